# tlsgate-bench-ipc: lookups over the engine's IPC against in-process
# lookups and a bare Unix-socket ping-pong (bench/README.md, "IPC").
# Not run by ctest.
add_executable(tlsgate-bench-ipc
  ${CMAKE_CURRENT_SOURCE_DIR}/ipc_bench.c
  ${CMAKE_CURRENT_SOURCE_DIR}/ipc_bench_peer.c)
target_include_directories(tlsgate-bench-ipc PRIVATE
                           ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(tlsgate-bench-ipc PRIVATE tlsgate_ipc tlsgate_policy
                                                tlsgate_common)
# It runs the real tlsgate-engine found beside it in bin/.
add_dependencies(tlsgate-bench-ipc tlsgate-engine)
