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

# libFuzzer target for the decoder (scripts/fuzz.sh; seeds in
# tests/fuzz/ipc_decode/): the codec compiled with coverage, clang only.
if(TLSGATE_FUZZ)
  add_library(tlsgate_ipc_codec_fuzz STATIC
    ${CMAKE_CURRENT_LIST_DIR}/rpc.c
    ${CMAKE_CURRENT_LIST_DIR}/rpc_decode.c
    ${CMAKE_CURRENT_LIST_DIR}/rpc_schema.c
    ${CMAKE_CURRENT_LIST_DIR}/rpc_stats.c)
  target_include_directories(tlsgate_ipc_codec_fuzz PUBLIC
    ${CMAKE_CURRENT_LIST_DIR} ${PROJECT_SOURCE_DIR}/engine)
  target_compile_options(tlsgate_ipc_codec_fuzz PRIVATE
    -fsanitize=fuzzer-no-link,address)
  target_link_libraries(tlsgate_ipc_codec_fuzz PUBLIC PkgConfig::MSGPACK
                                                      PkgConfig::LIBUV)
  add_executable(fuzz_ipc_decode
    ${PROJECT_SOURCE_DIR}/tests/ipc/fuzz_ipc_decode.c)
  target_compile_options(fuzz_ipc_decode PRIVATE -fsanitize=fuzzer,address)
  target_link_options(fuzz_ipc_decode PRIVATE -fsanitize=fuzzer,address)
  target_link_libraries(fuzz_ipc_decode PRIVATE tlsgate_ipc_codec_fuzz)
endif()
