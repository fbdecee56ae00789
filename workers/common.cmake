# libtlsgate_tls: the gateway certificate (generation at first start,
# loading, reload on SIGHUP), shared by the supervisor and the workers,
# and TLS over libuv (tlsio.c, the inbound engineer's).
add_library(tlsgate_tls STATIC ${CMAKE_CURRENT_SOURCE_DIR}/tlscert.c
                               ${CMAKE_CURRENT_SOURCE_DIR}/tlsio.c)
target_include_directories(tlsgate_tls PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(tlsgate_tls PUBLIC tlsgate_common PkgConfig::GNUTLS
                                         PkgConfig::LIBUV)
