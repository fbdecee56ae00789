# tlsgate-bench (STARTTLS / TLS / delivery / engine lookup load generator)
# and tlsgate-bench-limit (the bare GnuTLS handshake server used as the
# yardstick); bench/compare runs both against tlsgate and Postfix
# (bench/README.md, "Handshakes").
add_executable(tlsgate-bench
  ${CMAKE_CURRENT_LIST_DIR}/tlsgate_bench.c
  ${CMAKE_CURRENT_LIST_DIR}/tlsgate_bench_sess.c
  ${CMAKE_CURRENT_LIST_DIR}/tlsgate_bench_stats.c
  ${CMAKE_CURRENT_LIST_DIR}/tlsgate_bench_out.c
  ${CMAKE_CURRENT_LIST_DIR}/tlsgate_bench_lookup.c)
target_include_directories(tlsgate-bench PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tlsgate-bench PRIVATE tlsgate_ipc tlsgate_common
                      PkgConfig::GNUTLS PkgConfig::LIBUV PkgConfig::JANSSON)

add_executable(tlsgate-bench-limit ${CMAKE_CURRENT_LIST_DIR}/limit_server.c)
target_link_libraries(tlsgate-bench-limit PRIVATE PkgConfig::GNUTLS
                      PkgConfig::LIBUV)

# Smoke test (not a timing assertion): about 20 TLS sessions against the
# limit server on a free loopback port; the JSON record must be sane.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME bench_smoke
         COMMAND Python3::Interpreter ${CMAKE_CURRENT_LIST_DIR}/smoke.py
                 ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(bench_smoke PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77)
add_test(NAME bench_smoke_smtp
         COMMAND Python3::Interpreter ${CMAKE_CURRENT_LIST_DIR}/smoke.py
                 ${CMAKE_BINARY_DIR}/bin smtp)
set_tests_properties(bench_smoke_smtp PROPERTIES TIMEOUT 120
                     SKIP_RETURN_CODE 77)
