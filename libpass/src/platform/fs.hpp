#pragma once
// Durable file operations; posix/fs.cpp and windows/fs.cpp implement them.

#include <filesystem>
#include <string>
#include <string_view>

#include "pass/result.hpp"

namespace pass::platform {

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

/// Restricts a file to its owner (0600 on POSIX, SYSTEM + Administrators on Windows).
Status makePrivate(const std::filesystem::path& path);

}  // namespace pass::platform
