# check_readme.cmake — fails unless the README's usage example and the code
# tests/test_readme.c compiles are the same text.
#
#   cmake -DREADME=README.md -DSOURCE=tests/test_readme.c -P check_readme.cmake
#
# README side: the ```c block that follows the line
#   <!-- example: tests/test_readme.c -->
# SOURCE side: the lines between "/* README example begin */" and
# "/* README example end */". Both are compared byte for byte; on a
# difference both extracts are written next to the build for diffing.

foreach(var README SOURCE)
  if(NOT DEFINED ${var} OR NOT EXISTS "${${var}}")
    message(FATAL_ERROR "check_readme: ${var} ('${${var}}') does not exist")
  endif()
endforeach()

file(READ "${README}" readme)
file(READ "${SOURCE}" source)

# README: the fenced block after the marker.
set(marker "<!-- example: tests/test_readme.c -->")
string(FIND "${readme}" "${marker}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "check_readme: ${README} has no line '${marker}'")
endif()
string(SUBSTRING "${readme}" ${at} -1 rest)
string(FIND "${rest}" "```c\n" open)
if(open EQUAL -1)
  message(FATAL_ERROR "check_readme: no ```c block after '${marker}' in ${README}")
endif()
math(EXPR open "${open} + 5")
string(SUBSTRING "${rest}" ${open} -1 rest)
string(FIND "${rest}" "\n```" close)
if(close EQUAL -1)
  message(FATAL_ERROR "check_readme: the ```c block after '${marker}' is not closed")
endif()
math(EXPR close "${close} + 1") # keep the block's last newline
string(SUBSTRING "${rest}" 0 ${close} from_readme)

# Source: between the markers.
set(begin "/* README example begin */\n")
set(end "/* README example end */")
string(FIND "${source}" "${begin}" b)
string(FIND "${source}" "${end}" e)
if(b EQUAL -1 OR e EQUAL -1)
  message(FATAL_ERROR "check_readme: ${SOURCE} lacks the README example markers")
endif()
string(LENGTH "${begin}" blen)
math(EXPR b "${b} + ${blen}")
math(EXPR len "${e} - ${b}")
if(len LESS 0)
  message(FATAL_ERROR "check_readme: markers out of order in ${SOURCE}")
endif()
string(SUBSTRING "${source}" ${b} ${len} from_source)

if(NOT from_readme STREQUAL from_source)
  file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/readme_example.from_readme.c" "${from_readme}")
  file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/readme_example.from_source.c" "${from_source}")
  message(FATAL_ERROR "check_readme: the example in ${README} differs from the one "
    "in ${SOURCE}; compare ${CMAKE_CURRENT_BINARY_DIR}/readme_example.from_readme.c "
    "with readme_example.from_source.c (e.g. with diff -u)")
endif()
string(LENGTH "${from_source}" n)
message(STATUS "check_readme: the README example and ${SOURCE} agree (${n} bytes)")
