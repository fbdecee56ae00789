# Outbound: the durable queue, tlsgate-sendmail, tlsgate-queue and the
# sender tlsgate-smtpout (with the submission listener).
set(OUT_DIR ${CMAKE_CURRENT_SOURCE_DIR})

# libtlsgate_queue: queue files, DSNs and message text helpers.
add_library(tlsgate_queue STATIC ${OUT_DIR}/queue.c ${OUT_DIR}/queue_dsn.c
                                 ${OUT_DIR}/queue_text.c)
target_include_directories(tlsgate_queue PUBLIC ${OUT_DIR}
                           ${CMAKE_SOURCE_DIR}/engine)
target_link_libraries(tlsgate_queue PUBLIC tlsgate_common)

add_executable(tlsgate-sendmail ${OUT_DIR}/sendmail.c)
target_link_libraries(tlsgate-sendmail PRIVATE tlsgate_queue tlsgate_policy)

# tlsgate-smtpout: the sender pool member with the submission listener.
add_library(tlsgate_smtpout_reply STATIC ${OUT_DIR}/smtpout_reply.c)
target_include_directories(tlsgate_smtpout_reply PUBLIC ${OUT_DIR})
add_executable(tlsgate-smtpout ${OUT_DIR}/smtpout.c ${OUT_DIR}/smtpout_conn.c
                               ${OUT_DIR}/smtpout_submit.c ${OUT_DIR}/dns.c)
target_link_libraries(tlsgate-smtpout PRIVATE tlsgate_queue
  tlsgate_smtpout_reply tlsgate_smtpin tlsgate_ipc tlsgate_tls tlsgate_policy
  PkgConfig::CARES PkgConfig::LIBUV PkgConfig::GNUTLS)

# libFuzzer target (contract 5): seed corpus in tests/fuzz/smtpout_reply/.
if(TLSGATE_FUZZ)
  add_executable(fuzz_smtpout_reply
                 ${PROJECT_SOURCE_DIR}/tests/fuzz/smtpout_reply.c)
  target_link_libraries(fuzz_smtpout_reply PRIVATE tlsgate_smtpout_reply)
  target_compile_options(fuzz_smtpout_reply PRIVATE
                         -fsanitize=fuzzer,address)
  target_link_options(fuzz_smtpout_reply PRIVATE -fsanitize=fuzzer,address)
endif()

# tlsgate-queue: list, show, retry and delete queued messages.
add_executable(tlsgate-queue ${OUT_DIR}/queue_tool.c)
target_link_libraries(tlsgate-queue PRIVATE tlsgate_queue PkgConfig::JANSSON)
