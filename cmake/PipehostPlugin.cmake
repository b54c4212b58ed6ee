# pipehost_add_plugin(NAME source.cpp ...) builds a plugin library that pipehost can load:
# a MODULE named NAME.so, symbols hidden but the SDK's, linked against pipehost::sdk.
function(pipehost_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE pipehost::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_STANDARD 20
    CXX_STANDARD_REQUIRED ON
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(PIPEHOST_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${PIPEHOST_PLUGIN_OUTPUT_DIR})
  endif()
endfunction()
