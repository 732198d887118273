#pragma once
// Durable file operations; posix/fs.cpp and windows/fs.cpp implement them.

#include <filesystem>
#include <string>
#include <string_view>

#include "pass/result.hpp"

namespace pass::platform {

// Errors: code "not_found" when the file or directory does not exist, "io_error" otherwise; the
// message names the path and the system's reason.

/// Temp files of writeFileAtomic are named "<kTempPrefix><target name>.<unique>" in the target's
/// directory; a crash can leave one behind, and the directory's owner may delete them.
inline constexpr std::string_view kTempPrefix = ".tmp-";

/// A path as UTF-8 text for messages; path::string() would throw on Windows for names the
/// ANSI code page cannot hold.
inline std::string displayPath(const std::filesystem::path& p) {
  auto u8 = p.u8string();
  return std::string(u8.begin(), u8.end());
}

/// A path from UTF-8 text (configuration values, command-line arguments): path(std::string)
/// would read it in the ANSI code page on Windows.
inline std::filesystem::path pathFromUtf8(std::string_view text) {
  return std::filesystem::path(std::u8string(text.begin(), text.end()));
}

/// Writes `data` to `path` atomically and durably: temp file in the same directory, write,
/// fsync, rename over `path`, fsync the directory. `privateFile` restricts it to the owner.
Status writeFileAtomic(const std::filesystem::path& path, std::string_view data,
                       bool privateFile = false);

/// fsync of a directory so that a rename or unlink in it is durable.
Status syncDirectory(const std::filesystem::path& dir);

/// Renames atomically (replacing the target) and syncs the target's directory.
Status renameDurable(const std::filesystem::path& from, const std::filesystem::path& to);

/// Reads a whole file.
Result<std::string> readFile(const std::filesystem::path& path);

#ifndef _WIN32
/// Reads `relative` (a config::confinedPath) inside `folder` when, after every symbolic link is
/// resolved, it is a regular file inside `folder`: a link out of the folder, a directory, a
/// FIFO or a device is refused with code "unsafe_path", a file larger than `maxBytes` with
/// "too_large". Each component is opened with O_NOFOLLOW from the folder down and the file is
/// checked with fstat on the opened descriptor, so a link swapped in after the check is refused
/// too. POSIX only: the home and the appliance read folders that others filled; the Windows
/// agent reads none.
Result<std::string> readFileBeneath(const std::filesystem::path& folder,
                                    const std::filesystem::path& relative, std::size_t maxBytes);
#endif

/// Deletes the temp files of writeFileAtomic in `dir` (a missing directory holds none): each is a
/// write that never completed, so its caller was not told it was stored. Syncs `dir` when it
/// deleted any. "io_error" names a temp file that could not be deleted.
Status removeTempFiles(const std::filesystem::path& dir);

/// Restricts a file to its owner (0600 on POSIX, SYSTEM + Administrators on Windows).
Status makePrivate(const std::filesystem::path& path);

/// Restricts a directory and what will be created in it to its owner (0700 on POSIX; on
/// Windows SYSTEM + Administrators, inherited by new files and subdirectories).
Status makePrivateDirectory(const std::filesystem::path& dir);

}  // namespace pass::platform
