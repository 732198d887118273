# PASS_HARDENING: Debian's hardening flags (dpkg-buildflags with hardening=+all: stack
# protector, stack clash protection, control-flow protection, _FORTIFY_SOURCE, format
# security, full RELRO, bind now) on every target. The dev preset builds with them, so the
# Debian packages are made from the dev build's binaries instead of compiling them again
# (installer/debian/build.sh). The build type keeps choosing -O and -g; the flags' -g, -O2 and
# their path maps (which would rename source paths in debug info) are left out.
find_program(PASS_DPKG_BUILDFLAGS dpkg-buildflags)
if(NOT PASS_DPKG_BUILDFLAGS)
  message(FATAL_ERROR "PASS_HARDENING needs dpkg-buildflags (Debian package dpkg-dev; "
                      "scripts/install-deps.sh installs it)")
endif()

function(pass_debian_flags kind out)
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env DEB_BUILD_MAINT_OPTIONS=hardening=+all
            ${PASS_DPKG_BUILDFLAGS} --get ${kind}
    OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  list(FILTER flags EXCLUDE REGEX "^(-g|-O2|-ffile-prefix-map=.*|-fdebug-prefix-map=.*)$")
  set(${out} ${flags} PARENT_SCOPE)
endfunction()

pass_debian_flags(CPPFLAGS pass_cppflags)
pass_debian_flags(CXXFLAGS pass_cxxflags)
pass_debian_flags(LDFLAGS pass_ldflags)
add_compile_options(${pass_cppflags} ${pass_cxxflags})
add_link_options(${pass_ldflags})
message(STATUS "Debian hardening: ${pass_cppflags} ${pass_cxxflags} | ${pass_ldflags}")
