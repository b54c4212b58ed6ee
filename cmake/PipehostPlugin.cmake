# pipehost_add_plugin(NAME
#     SOURCES <name>_plugin.cpp component.cpp ...   # the declaration and the components
#     [LIBRARIES target ...]                        # what the components link
#     [TESTS tests/x_test.cpp ...]                  # doctest files (a main is generated)
#     [TEST_LIBRARIES target ...]                   # what only the tests link
#     [NO_INSTALL])                                 # test-only plugins
#
# Builds NAME.so, a MODULE pipehost can load (symbols hidden but the SDK's, linked
# against pipehost::sdk), its install rule, and with TESTS an executable NAME_test
# registered with ctest as NAME.unit that links the very same objects. The short form
# pipehost_add_plugin(NAME a.cpp b.cpp) builds just the module.
function(pipehost_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "NO_INSTALL" "" "SOURCES;LIBRARIES;TESTS;TEST_LIBRARIES")
  set(sources ${arg_SOURCES} ${arg_UNPARSED_ARGUMENTS})

  # One compilation for the module and the tests: an object library.
  add_library(${name}_objects OBJECT ${sources})
  target_link_libraries(${name}_objects PUBLIC pipehost::sdk ${arg_LIBRARIES})
  target_include_directories(${name}_objects PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  set_target_properties(${name}_objects PROPERTIES
    POSITION_INDEPENDENT_CODE ON
    CXX_STANDARD 20
    CXX_STANDARD_REQUIRED ON
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)

  add_library(${name} MODULE $<TARGET_OBJECTS:${name}_objects>)
  target_link_libraries(${name} PRIVATE pipehost::sdk ${arg_LIBRARIES})
  set_target_properties(${name} PROPERTIES PREFIX "")
  if(PIPEHOST_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${PIPEHOST_PLUGIN_OUTPUT_DIR})
  endif()
  if(NOT arg_NO_INSTALL)
    include(GNUInstallDirs)
    install(TARGETS ${name} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/pipehost/plugins)
  endif()

  if(arg_TESTS)
    if(NOT TARGET doctest::doctest)
      find_package(doctest QUIET)
    endif()
    if(NOT TARGET doctest::doctest)
      message(WARNING "pipehost_add_plugin(${name}): doctest not found, tests not built")
      return()
    endif()
    set(main ${CMAKE_CURRENT_BINARY_DIR}/${name}_test_main.cpp)
    file(WRITE ${main} "#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN\n#include <doctest/doctest.h>\n")
    add_executable(${name}_test ${main} ${arg_TESTS} $<TARGET_OBJECTS:${name}_objects>)
    target_link_libraries(${name}_test PRIVATE pipehost::sdk ${arg_LIBRARIES} ${arg_TEST_LIBRARIES}
                                               doctest::doctest)
    target_include_directories(${name}_test PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    set_target_properties(${name}_test PROPERTIES CXX_STANDARD 20 CXX_STANDARD_REQUIRED ON)
    add_test(NAME ${name}.unit COMMAND ${name}_test)
  endif()
endfunction()
