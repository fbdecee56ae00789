# tlsgate-engine: the policy engine daemon (docs/ipc.md).
add_executable(tlsgate-engine
  ${CMAKE_CURRENT_LIST_DIR}/engine.c
  ${CMAKE_CURRENT_LIST_DIR}/engine_conn.c
  ${CMAKE_CURRENT_LIST_DIR}/engine_dispatch.c
  ${CMAKE_CURRENT_LIST_DIR}/engine_events.c
  ${CMAKE_CURRENT_LIST_DIR}/engine_stats.c)
target_link_libraries(tlsgate-engine PRIVATE tlsgate_ipc tlsgate_policy
                                             PkgConfig::LMDB PkgConfig::LIBUV)
