# Toolchain for pass-svp.exe: x86_64-w64-mingw32 with the posix thread model (std::thread,
# std::mutex), static. PASS_WINDOWS_DEPS is the prefix scripts/windows-deps.sh printed.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc-posix)
set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++-posix)
set(CMAKE_RC_COMPILER x86_64-w64-mingw32-windres)

if(NOT PASS_WINDOWS_DEPS AND DEFINED ENV{PASS_WINDOWS_DEPS})
  set(PASS_WINDOWS_DEPS "$ENV{PASS_WINDOWS_DEPS}")
endif()
set(PASS_WINDOWS_DEPS "${PASS_WINDOWS_DEPS}" CACHE PATH "Prefix built by scripts/windows-deps.sh")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PASS_WINDOWS_DEPS)

set(CMAKE_FIND_ROOT_PATH /usr/x86_64-w64-mingw32 ${PASS_WINDOWS_DEPS})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest runs the Windows test binaries under Wine.
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/lib/wine/wine64)
