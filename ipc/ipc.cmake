# libtlsgate_ipc: the MessagePack-RPC codec (rpc*.c) and the engine clients
# (engine_client.c: async on libuv; engine_sync.c: blocking).
add_library(tlsgate_ipc STATIC
  ${CMAKE_CURRENT_LIST_DIR}/rpc.c
  ${CMAKE_CURRENT_LIST_DIR}/rpc_decode.c
  ${CMAKE_CURRENT_LIST_DIR}/rpc_schema.c
  ${CMAKE_CURRENT_LIST_DIR}/rpc_stats.c
  ${CMAKE_CURRENT_LIST_DIR}/engine_client.c
  ${CMAKE_CURRENT_LIST_DIR}/engine_sync.c)
target_include_directories(tlsgate_ipc PUBLIC ${CMAKE_CURRENT_LIST_DIR}
                                              ${PROJECT_SOURCE_DIR}/engine)
target_link_libraries(tlsgate_ipc PUBLIC tlsgate_common PkgConfig::MSGPACK
                                         PkgConfig::LIBUV)
