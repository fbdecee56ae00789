# tlsgated: the supervisor (binds the listeners, runs and restarts the
# engine and the worker pools).
add_executable(tlsgated ${CMAKE_CURRENT_SOURCE_DIR}/supervisor.c
                        ${CMAKE_CURRENT_SOURCE_DIR}/supervisor_child.c
                        ${CMAKE_CURRENT_SOURCE_DIR}/supervisor_reload.c)
target_link_libraries(tlsgated PRIVATE tlsgate_tls tlsgate_common
                                       PkgConfig::LIBUV)
target_compile_definitions(tlsgated PRIVATE
                           TLSGATE_VERSION="${PROJECT_VERSION}")
