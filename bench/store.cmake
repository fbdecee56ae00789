# tlsgate-bench-lookup: import time and in-process policy lookups per
# second on a generated store (see bench/README.md). Not run by ctest.
add_executable(tlsgate-bench-lookup
  ${CMAKE_CURRENT_SOURCE_DIR}/lookup.c
  ${CMAKE_CURRENT_SOURCE_DIR}/lookup_gen.c)
target_include_directories(tlsgate-bench-lookup PRIVATE
                           ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(tlsgate-bench-lookup PRIVATE tlsgate_policy
                      tlsgate_common)
# It runs the real tlsgate-admin found beside it in bin/.
add_dependencies(tlsgate-bench-lookup tlsgate-admin)
