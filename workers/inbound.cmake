# The inbound receiver (tlsgate-smtpin) and its pure parsers.
# libtlsgate_smtpin: command parser, DATA state machine and Maildir
# delivery, shared by the receiver, its unit tests and the fuzz targets.
add_library(tlsgate_smtpin STATIC
  ${CMAKE_CURRENT_LIST_DIR}/smtpin_parse.c
  ${CMAKE_CURRENT_LIST_DIR}/smtpin_maildir.c)
target_include_directories(tlsgate_smtpin PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tlsgate_smtpin PUBLIC tlsgate_policy)

add_executable(tlsgate-smtpin
  ${CMAKE_CURRENT_LIST_DIR}/smtpin.c
  ${CMAKE_CURRENT_LIST_DIR}/smtpin_session.c
  ${CMAKE_CURRENT_LIST_DIR}/smtpin_cmd.c
  ${CMAKE_CURRENT_LIST_DIR}/smtpin_message.c)
target_link_libraries(tlsgate-smtpin PRIVATE tlsgate_smtpin tlsgate_tls
                      tlsgate_ipc tlsgate_common PkgConfig::LIBUV
                      PkgConfig::GNUTLS)

# libFuzzer targets (contract 5): seed corpora in tests/fuzz/<name>/. The
# parser is compiled into each target so that it gets coverage feedback.
if(TLSGATE_FUZZ)
  foreach(name smtpin_cmd smtpin_data)
    add_executable(fuzz_${name} ${PROJECT_SOURCE_DIR}/tests/fuzz/${name}.c
                                ${CMAKE_CURRENT_LIST_DIR}/smtpin_parse.c)
    target_include_directories(fuzz_${name} PRIVATE ${CMAKE_CURRENT_LIST_DIR})
    target_link_libraries(fuzz_${name} PRIVATE tlsgate_policy)
    target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address)
  endforeach()
endif()
