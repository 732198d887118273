#pragma once
/// Follows the log files of one directory the way Fluent Bit's in_tail does: by file identity
/// and offset, across rename rotation, copy-truncate and truncation, so that a line is never
/// skipped and, as long as the caller saves the returned state only after storing the lines,
/// never reported twice (a crash in between repeats lines with the same ids).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "pass/collector.hpp"
#include "pass/result.hpp"

namespace pass::hitachi_svp {

/// What the tailer remembers of one followed file.
struct TailFileState {
  FileId id;
  std::string name;          // last name seen, UTF-8
  std::uint64_t offset = 0;  // the next unread byte: a line's start (or a long line's piece's)
  std::uint64_t size = 0;    // size when last seen, to tell whether a vanished file was read
  /// Identifies the content behind `id`: SHA-256 (hex) of the first line, at most 4 KiB of it.
  /// A file rewritten in place, or an inode reused by a new file, has another first line.
  std::uint64_t fingerprintLength = 0;  // 0: not taken yet (the first line was not complete)
  std::string fingerprint;
};

/// The tailer's durable memory for one directory.
struct TailState {
  bool started = false;  // the directory was seen once, so new files are read from their start
  std::vector<TailFileState> files;  // reading order: oldest data first
};

/// JSON text for the cursor store: {"version":1,"started":..,"files":[{..}]}.
std::string toJson(const TailState& state);
/// Inverse of toJson; empty text is a fresh state. Errors: "svp.bad_tail_state" naming the field.
Result<TailState> parseTailState(std::string_view json);

struct TailOptions {
  /// On first sight of the directory read every file from its start; by default the current
  /// ends are recorded and only lines written later are returned (no flood of history).
  bool fromHead = false;
  /// Bytes of lines returned per call, over all files; what is left is read by the next call.
  std::size_t maxBytes = 16 * 1024 * 1024;
  /// A line longer than this (a binary file, a runaway writer) is returned in pieces of this
  /// size so that the tailer always moves on. Clamped below maxBytes.
  std::size_t maxLineBytes = 64 * 1024;
};

/// One complete line.
struct TailLine {
  std::string file;          // its file's name when read
  std::uint64_t offset = 0;  // of its first byte in that file
  std::string text;          // without the '\n' (a '\r' before it is kept)
  std::string id;            // lineId(offset, text)
};

struct TailBatch {
  std::vector<TailLine> lines;  // oldest data first
  TailState next;               // to be saved once the lines are stored
  /// What a field engineer may want to know: truncations, replaced files, files deleted before
  /// they were read to the end, split lines, files that could not be read this time.
  std::vector<std::string> notes;
  bool more = false;  // maxBytes was reached with unread data left
};

/// The complete lines written since `state` to the files in `dir` whose names match `pattern`
/// (plus followed files renamed to other names, until a run finds nothing new in them). Does
/// not change anything: the caller keeps `next` only after it has stored the lines.
/// Errors: the file system's listing error ("not_found" when `dir` is missing, "io_error"), or
/// "svp.tail_unstable" when files kept being renamed while they were read.
Result<TailBatch> readNew(FileSystem& fs, const std::filesystem::path& dir,
                          std::string_view pattern, const TailState& state,
                          const TailOptions& options = {});

/// A file-name glob: '*' any run of characters, '?' one character; ASCII letters match either
/// case, as file names do on the SVP's Windows.
bool globMatch(std::string_view pattern, std::string_view name);

/// The id of the line `text` that starts at `offset` in its file: 32 hex digits of SHA-256
/// over both. The same record met again (after a crash, in a copy-truncate copy, under a new
/// name) has the same id; identical lines at different offsets are different records.
std::string lineId(std::uint64_t offset, std::string_view text);

}  // namespace pass::hitachi_svp
