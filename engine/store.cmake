# libtlsgate_policy: the LMDB policy store, address parsing and the pure
# decision functions, shared by the engine, tlsgate-admin and the tests.
add_library(tlsgate_policy STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/addr.c
  ${CMAKE_CURRENT_SOURCE_DIR}/store.c
  ${CMAKE_CURRENT_SOURCE_DIR}/store_records.c
  ${CMAKE_CURRENT_SOURCE_DIR}/store_inbound.c
  ${CMAKE_CURRENT_SOURCE_DIR}/policy.c)
target_include_directories(tlsgate_policy PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(tlsgate_policy PUBLIC tlsgate_common PkgConfig::LMDB
                      PkgConfig::MSGPACK PkgConfig::IDN2)
