# The Windows build's dependencies, from the prefix scripts/windows-deps.sh builds: OpenSSL,
# libcurl and Boost as static libraries; fmt, pugixml, nlohmann-json and doctest header-only.
# Everything is linked statically: pass-svp.exe needs nothing beside it but system DLLs.
if(NOT PASS_WINDOWS_DEPS OR NOT EXISTS "${PASS_WINDOWS_DEPS}/.complete")
  message(FATAL_ERROR "PASS_WINDOWS_DEPS must name the prefix scripts/windows-deps.sh printed "
                      "(got '${PASS_WINDOWS_DEPS}'); use the windows preset: "
                      "PASS_WINDOWS_DEPS=$(scripts/windows-deps.sh) cmake --preset windows")
endif()
set(deps "${PASS_WINDOWS_DEPS}")

add_link_options(-static -static-libgcc -static-libstdc++)
# GCC 12 warns about std::string copies it inlined at -O3 that cannot overlap (GCC bug 105651,
# fixed in GCC 13): a false -Wrestrict that -Werror would turn into a failed build.
add_compile_options(-Wno-restrict)

set(OPENSSL_USE_STATIC_LIBS ON)
set(OPENSSL_ROOT_DIR "${deps}")
find_package(OpenSSL 3 REQUIRED)
# Static OpenSSL on Windows needs these system libraries.
set_property(TARGET OpenSSL::Crypto APPEND PROPERTY INTERFACE_LINK_LIBRARIES ws2_32 crypt32 bcrypt)

add_library(CURL::libcurl STATIC IMPORTED)
set_target_properties(CURL::libcurl PROPERTIES
  IMPORTED_LOCATION "${deps}/lib/libcurl.a"
  INTERFACE_INCLUDE_DIRECTORIES "${deps}/include"
  INTERFACE_COMPILE_DEFINITIONS CURL_STATICLIB
  INTERFACE_LINK_LIBRARIES "OpenSSL::SSL;OpenSSL::Crypto;ws2_32;crypt32;bcrypt;advapi32")

set(Boost_USE_STATIC_LIBS ON)
set(Boost_USE_STATIC_RUNTIME ON)
find_package(Boost 1.81.0 EXACT CONFIG REQUIRED COMPONENTS filesystem program_options
             PATHS "${deps}/lib/cmake" NO_DEFAULT_PATH)

# Header-only libraries: one INTERFACE target each, named as Debian's CMake packages name them.
function(pass_header_only target)
  add_library(${target} INTERFACE IMPORTED)
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${deps}/include"
                                             INTERFACE_COMPILE_DEFINITIONS "${ARGN}")
endfunction()
pass_header_only(fmt::fmt FMT_HEADER_ONLY)
pass_header_only(pugixml::pugixml PUGIXML_HEADER_ONLY)
pass_header_only(nlohmann_json::nlohmann_json "")
pass_header_only(doctest::doctest "")

set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
