#pragma once
// Running a program with a deadline (posix/process.cpp; windows/process.cpp). Collectors that
// read an array through its vendor's command-line tool use it (hitachi_df: the SNM2 CLI).

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "pass/result.hpp"

namespace pass::platform {

struct ProcessResult {
  int exitCode = 0;        // the program's exit status; 128 + N when signal N ended it
  std::string out;         // standard output, at most maxOutput bytes
  std::string err;         // standard error, at most maxOutput bytes
  bool truncated = false;  // more than maxOutput bytes were written to one of them
};

struct ProcessOptions {
  /// Variables added to (or replacing in) the agent's environment.
  std::vector<std::pair<std::string, std::string>> env;
  std::chrono::milliseconds timeout{60000};
  std::size_t maxOutput = 16u << 20;
};

/// Runs argv[0] (a path; no shell, no PATH search) with argv[1..] and waits for it at most
/// options.timeout. Standard input is empty. On the deadline the program (and its process
/// group) is killed and the error code is "timeout". A program that cannot be started gives
/// "not_found" (no such file) or "io_error", the message naming the path and the reason.
/// A non-zero exit status is not an error here: the caller reads exitCode.
Result<ProcessResult> runProcess(const std::vector<std::string>& argv,
                                 const ProcessOptions& options);

}  // namespace pass::platform
