# Fails when a file under apps/ or bench/ includes a private header: any path
# with an internal/ component. Apps and benchmarks see only public headers
# (style guide, conventions 2). Run by the target tributary_check_public_includes,
# on which every app and benchmark depends:
#   cmake -DSOURCE_DIR=<repo> -P cmake/check_public_includes.cmake
if(NOT SOURCE_DIR)
  message(FATAL_ERROR "check_public_includes: set SOURCE_DIR")
endif()
file(GLOB_RECURSE files LIST_DIRECTORIES false
  "${SOURCE_DIR}/apps/*.h" "${SOURCE_DIR}/apps/*.cc"
  "${SOURCE_DIR}/bench/*.h" "${SOURCE_DIR}/bench/*.cc")
set(violations "")
foreach(file IN LISTS files)
  file(STRINGS "${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]([^>\"]*/)?internal/")
  foreach(line IN LISTS lines)
    file(RELATIVE_PATH rel "${SOURCE_DIR}" "${file}")
    string(STRIP "${line}" line)
    string(APPEND violations "\n  ${rel}: ${line}")
  endforeach()
endforeach()
if(violations)
  message(FATAL_ERROR
    "apps/ and bench/ may include only public headers, not internal/ ones:${violations}")
endif()
