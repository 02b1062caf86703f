# Small helpers shared by every folder: one library per layer with an alias,
# one test executable per *_test.cc, one benchmark executable per file.

set(TRIBUTARY_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
    -Wcast-align -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough)
# GCC 12 reports -Wrestrict inside libstdc++'s std::string at -O3 where no
# overlap exists (GCC bugs 105329, 105651); keep the rest of -Wall fatal.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND TRIBUTARY_WARNINGS -Wno-restrict)
endif()

function(tributary_compile_options target)
  target_compile_options(${target} PRIVATE ${TRIBUTARY_WARNINGS})
  if(TRIBUTARY_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

if(TRIBUTARY_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# tributary_add_library(<layer> SOURCES ... DEPS ...)
# Makes target tributary_<layer> with alias tributary::<layer>; the layer's
# public headers are included as "<layer>/<header>.h" from the source root.
function(tributary_add_library layer)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(tributary_${layer} ${ARG_SOURCES})
  add_library(tributary::${layer} ALIAS tributary_${layer})
  target_include_directories(tributary_${layer} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(tributary_${layer} PUBLIC ${ARG_DEPS})
  tributary_compile_options(tributary_${layer})
endfunction()

# Apps and benchmarks include only public headers: this target fails the
# build when a file under apps/ or bench/ includes an internal/ path. It runs
# on every build; tributary_public_only(<target>) makes <target> wait for it.
add_custom_target(tributary_check_public_includes
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
          -P ${PROJECT_SOURCE_DIR}/cmake/check_public_includes.cmake
  COMMENT "Checking that apps/ and bench/ include only public headers"
  VERBATIM)
function(tributary_public_only target)
  add_dependencies(${target} tributary_check_public_includes)
endfunction()

# The programs' allocator: tcmalloc unless TRIBUTARY_TCMALLOC is off (see
# CMakeLists.txt). Tests keep the default one (the sanitizers replace it).
function(tributary_link_allocator target)
  if(TRIBUTARY_TCMALLOC)
    target_link_libraries(${target} PRIVATE PkgConfig::TCMALLOC)
  endif()
endfunction()

# tributary_add_executable(<name> SOURCES ... DEPS ...)
# Programs under apps/ (public headers only, see above).
function(tributary_add_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  tributary_link_allocator(${name})
  tributary_compile_options(${name})
  tributary_public_only(${name})
endfunction()

# tributary_add_test(<file_test.cc> LABEL unit|kafka|e2e [TIMEOUT s]
#                    [RESOURCE_LOCK name] DEPS ...)
# One executable per test file, registered through gtest_discover_tests.
# Tests naming the same RESOURCE_LOCK never run at the same time under
# `ctest -j` (e.g. tests that share one database and its CDC stream).
function(tributary_add_test file)
  cmake_parse_arguments(ARG "" "LABEL;TIMEOUT;RESOURCE_LOCK" "DEPS" ${ARGN})
  get_filename_component(name ${file} NAME_WE)
  file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR}/tests ${CMAKE_CURRENT_SOURCE_DIR})
  string(REPLACE "/" "_" prefix "${rel}")
  if(prefix)
    set(name "${prefix}_${name}")
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_executable(${name} ${file})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} tributary::test_support
                        GTest::gtest GTest::gmock GTest::gtest_main)
  tributary_compile_options(${name})
  set(lock)
  if(ARG_RESOURCE_LOCK)
    set(lock RESOURCE_LOCK ${ARG_RESOURCE_LOCK})
  endif()
  gtest_discover_tests(${name}
    TEST_PREFIX "${name}."
    PROPERTIES LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT} ${lock}
    DISCOVERY_TIMEOUT 60)
endfunction()

# tributary_add_bench(<file.cc> DEPS ...)
function(tributary_add_bench file)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  get_filename_component(name ${file} NAME_WE)
  add_executable(${name} ${file})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  tributary_link_allocator(${name})
  tributary_compile_options(${name})
  tributary_public_only(${name})
endfunction()
