#include "collectors/hitachi_svp/tail.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <type_traits>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/bytes.hpp"
#include "pass/crypto.hpp"
#include "platform/fs.hpp"

namespace pass::hitachi_svp {
namespace {

constexpr std::uint64_t kFingerprintMax = 4096;
constexpr int kStateVersion = 1;
// Reading while the SVP rotates can see a name move to another file between the listing and
// the read; the read is then repeated. More than this many in a row means something renames
// files continuously, and the run gives up rather than spin.
constexpr int kAttempts = 3;

using IdKey = std::pair<std::uint64_t, std::uint64_t>;
IdKey keyOf(const FileId& id) { return {id.device, id.index}; }

std::filesystem::path fileIn(const std::filesystem::path& dir, std::string_view utf8Name) {
  std::u8string name(utf8Name.begin(), utf8Name.end());
  return dir / std::filesystem::path(name);
}

std::string fingerprintOf(std::string_view bytes) { return toHex(sha256(asBytes(bytes))); }

char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

/// One file this run looks at.
struct Work {
  TailFileState st;
  TailFileState before;  // kept when the file cannot be read this time
  FileSystem::Entry entry;
  bool known = false;
  bool restart = false;  // truncated or replaced: read again from the start
  bool failed = false;
};

/// Where the last complete line of a file ends, looking back at most `budget` bytes from its
/// end; the file's size when that finds no line break (the partial line is then skipped, as
/// history before installation is).
Result<std::uint64_t> endOfLastLine(FileSystem& fs, const std::filesystem::path& file,
                                    std::uint64_t size, std::size_t budget) {
  constexpr std::uint64_t kChunk = 64 * 1024;
  std::uint64_t end = size;
  std::size_t spent = 0;
  while (end > 0 && spent < budget) {
    std::uint64_t start = end > kChunk ? end - kChunk : 0;
    auto data = fs.read(file, start, static_cast<std::size_t>(end - start));
    if (!data) return std::unexpected(data.error());
    spent += data->size();
    if (data->size() != end - start) return size;  // changed under us; the next run sorts it out
    auto nl = data->rfind('\n');
    if (nl != std::string::npos) return start + nl + 1;
    if (start == 0) return 0;  // one unfinished first line: read it once it is complete
    end = start;
  }
  return size;
}

class Reader {
 public:
  Reader(FileSystem& fs, const std::filesystem::path& dir, const TailOptions& options)
      : fs_(fs), dir_(dir), options_(options), budget_(std::max<std::size_t>(options.maxBytes, 2)) {
    // A full budget must hold more than one piece of a long line, or an unfinished line of
    // exactly one piece would wait for ever.
    options_.maxLineBytes = std::clamp<std::size_t>(options_.maxLineBytes, 1, budget_ - 1);
  }

  /// Whether a followed file still holds what the state says; when not (truncated, rewritten,
  /// or another file under the same identity) it is to be read again from its start.
  void check(Work& w, TailBatch& batch) {
    auto& st = w.st;
    const auto size = w.entry.size;
    std::optional<std::string> restart;
    if (size < st.offset) {
      restart = fmt::format("{}: truncated to {} bytes (read up to {}); reading it from the start",
                            w.entry.name, size, st.offset);
    } else if (st.fingerprintLength > 0) {
      auto first = size < st.fingerprintLength
                       ? Result<std::string>(std::string())
                       : fs_.read(fileIn(dir_, w.entry.name), 0,
                                  static_cast<std::size_t>(st.fingerprintLength));
      if (!first) {
        skip(w, batch, first.error());
        return;
      }
      if (first->size() != st.fingerprintLength || fingerprintOf(*first) != st.fingerprint) {
        restart = fmt::format(
            "{}: its first line changed (rewritten in place, or a new file that "
            "reuses the old one's identity); reading it from the start",
            w.entry.name);
      }
    }
    if (!restart) return;
    batch.notes.push_back(std::move(*restart));
    w.restart = true;
    st.offset = 0;
    st.fingerprintLength = 0;
    st.fingerprint.clear();
  }

  /// Takes the file's fingerprint when due and reads its new complete lines within the budget.
  /// Sets w.failed when the file could not be read.
  void follow(Work& w, TailBatch& batch) {
    auto& st = w.st;
    const auto size = w.entry.size;
    const auto path = fileIn(dir_, w.entry.name);
    st.name = w.entry.name;
    st.size = size;

    if (st.fingerprintLength == 0 && size > 0) {
      auto head = fs_.read(path, 0, static_cast<std::size_t>(std::min(size, kFingerprintMax)));
      if (!head) return skip(w, batch, head.error());
      auto nl = head->find('\n');
      if (nl != std::string::npos || head->size() == kFingerprintMax) {
        std::string_view first(*head);
        if (nl != std::string::npos) first = first.substr(0, nl + 1);
        st.fingerprintLength = first.size();
        st.fingerprint = fingerprintOf(first);
      }
    }

    if (size <= st.offset) return;
    const std::uint64_t avail = size - st.offset;
    if (avail > budget_) starved_ = true;
    if (budget_ == 0) return;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(avail, budget_));
    auto data = fs_.read(path, st.offset, want);
    if (!data) return skip(w, batch, data.error());

    std::string_view rest(*data);
    std::uint64_t offset = st.offset;
    bool split = false;
    for (auto nl = rest.find('\n'); nl != std::string_view::npos; nl = rest.find('\n')) {
      offset += emitLine(batch, w.entry.name, offset, rest.substr(0, nl), true, split);
      rest.remove_prefix(nl + 1);
    }
    offset += emitLine(batch, w.entry.name, offset, rest, false, split);
    if (split) {
      batch.notes.push_back(fmt::format("{}: a line longer than {} bytes was returned in pieces",
                                        w.entry.name, options_.maxLineBytes));
    }
    // Only what is consumed counts: an unfinished line is read again next time, and counting
    // it could leave a later file starved on every run.
    budget_ -= static_cast<std::size_t>(offset - st.offset);
    st.offset = offset;
  }

  bool starved() const { return starved_; }

 private:
  static void skip(Work& w, TailBatch& batch, const Error& e) {
    batch.notes.push_back(fmt::format("{}: not read this time: {}", w.entry.name, e.message));
    w.failed = true;
  }

  static void emit(TailBatch& batch, const std::string& file, std::uint64_t offset,
                   std::string_view text) {
    batch.lines.push_back(TailLine{file, offset, std::string(text), lineId(offset, text)});
  }

  /// Emits the line that starts at `offset` and returns the bytes it consumed. `complete`:
  /// `text` was followed by '\n'; otherwise it is unfinished and only its whole pieces are
  /// emitted. A line longer than maxLineBytes is cut into pieces of that size, the same ones
  /// whether it is met finished or not, so that a line read again gets the same ids: an
  /// unfinished line keeps its last piece back, which only the line's end can complete.
  std::size_t emitLine(TailBatch& batch, const std::string& file, std::uint64_t offset,
                       std::string_view text, bool complete, bool& cut) {
    const std::size_t m = options_.maxLineBytes;
    std::size_t consumed = 0;
    while (text.size() > m) {
      emit(batch, file, offset + consumed, text.substr(0, m));
      consumed += m;
      text.remove_prefix(m);
      cut = true;
    }
    if (!complete) return consumed;
    emit(batch, file, offset + consumed, text);
    return consumed + text.size() + 1;
  }

  FileSystem& fs_;
  const std::filesystem::path& dir_;
  TailOptions options_;
  std::size_t budget_;
  bool starved_ = false;
};

struct Attempt {
  TailBatch batch;
  /// name → identity for every file that was read, to check against a second listing.
  std::vector<std::pair<std::string, FileId>> readAs;
};

Result<Attempt> readOnce(FileSystem& fs, const std::filesystem::path& dir, std::string_view pattern,
                         const TailState& state, const TailOptions& options) {
  auto listing = fs.list(dir);
  if (!listing) return std::unexpected(listing.error());
  // By name, so that a file with two names (hard links) is always seen under the same one and
  // new files come in a deterministic order.
  std::sort(listing->begin(), listing->end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  std::map<IdKey, const FileSystem::Entry*> byId;
  for (const auto& e : *listing) byId.emplace(keyOf(e.id), &e);

  Attempt out;
  auto& batch = out.batch;
  batch.next.started = true;
  std::vector<Work> work;
  std::set<IdKey> followed;
  for (const auto& f : state.files) {
    // A second entry for one file can only come from a hand-edited state.
    if (!followed.insert(keyOf(f.id)).second) continue;
    auto it = byId.find(keyOf(f.id));
    if (it == byId.end()) {
      if (f.size > f.offset) {
        batch.notes.push_back(
            fmt::format("{}: deleted with {} bytes not read", f.name, f.size - f.offset));
      }
      continue;
    }
    const auto& e = *it->second;
    // A file rotated to a name outside the pattern is followed to its end, and dropped once
    // a run finds nothing new in it: the writer may still finish a line after the rename.
    if (!globMatch(pattern, e.name) && e.size == f.offset) continue;
    work.push_back(Work{.st = f, .before = f, .entry = e, .known = true});
  }
  for (const auto& e : *listing) {
    if (followed.contains(keyOf(e.id)) || !globMatch(pattern, e.name)) continue;
    followed.insert(keyOf(e.id));
    Work w{.st = {}, .before = {}, .entry = e};
    w.st.id = e.id;
    w.st.name = e.name;
    if (!state.started && !options.fromHead) {
      auto end = endOfLastLine(fs, fileIn(dir, e.name), e.size, options.maxBytes);
      if (!end) {
        batch.notes.push_back(
            fmt::format("{}: not read this time: {}", e.name, end.error().message));
      }
      w.st.offset = end ? *end : e.size;
    }
    w.before = w.st;
    work.push_back(std::move(w));
  }

  Reader reader(fs, dir, options);
  for (auto& w : work) {
    if (w.known) reader.check(w, batch);
  }
  // Oldest data first: followed files in the order they were first seen (a file renamed by a
  // rotation keeps its place before its successor), then new files, then files that start
  // over: a copy made by copy-truncate holds data older than what the truncated file holds
  // now. Several new files in one run have nothing to tell their age by but their names.
  std::stable_partition(work.begin(), work.end(), [](const Work& w) { return !w.restart; });
  for (auto& w : work) {
    if (!w.failed) reader.follow(w, batch);
    if (w.failed) {
      // A followed file keeps its place; so does a file first seen now whose history is to be
      // skipped, or the next run would take it for new and read its history. Any other new
      // file is simply new again next time.
      if (w.known || !state.started) batch.next.files.push_back(std::move(w.before));
      continue;
    }
    out.readAs.emplace_back(w.entry.name, w.entry.id);
    batch.next.files.push_back(std::move(w.st));
  }
  batch.more = reader.starved();
  return out;
}

template <typename T>
Result<T> field(const nlohmann::json& j, std::string_view key, std::string_view where) {
  auto it = j.find(key);
  if (it == j.end()) {
    return fail("svp.bad_tail_state", fmt::format("tail state: {}'{}' is missing", where, key));
  }
  // get<std::uint64_t>() would turn -1 into 2^64-1.
  if constexpr (std::is_same_v<T, std::uint64_t>) {
    if (!it->is_number_unsigned()) {
      return fail("svp.bad_tail_state",
                  fmt::format("tail state: {}'{}' has the wrong type: {}", where, key, it->dump()));
    }
  }
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return fail("svp.bad_tail_state",
                fmt::format("tail state: {}'{}' has the wrong type: {}", where, key, it->dump()));
  }
}

}  // namespace

bool globMatch(std::string_view pattern, std::string_view name) {
  // Iterative matching with one backtrack point: on a mismatch, the last '*' takes one more
  // character. Linear in practice, and no recursion for a fuzzer to exhaust.
  std::size_t p = 0, n = 0;
  std::size_t star = std::string_view::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (p < pattern.size() &&
               (pattern[p] == '?' || lowerAscii(pattern[p]) == lowerAscii(name[n]))) {
      ++p;
      ++n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// The id is a hash of the line's bytes and its offset in its file, not of the file's name or
// identity, because the same record is met again under another name and identity: a copy-
// truncate rotation copies the file byte for byte, so the copy holds the record at the same
// offset, and a rename keeps the offsets anyway. The offset is what keeps two identical lines
// apart: a storm of one SIM can write the same text twice in one second, and those are two
// records (the home counts repeats). Two identical lines at the same offset are taken for one
// record; in a timestamped log that needs the same second, code, part and text, and in
// practice is a copy. A line split for length is hashed as the piece it is.
std::string lineId(std::uint64_t offset, std::string_view text) {
  Bytes data;
  data.reserve(8 + text.size());
  putU64(data, offset);
  data.insert(data.end(), text.begin(), text.end());
  auto digest = sha256(data);
  digest.resize(16);
  return toHex(digest);
}

std::string toJson(const TailState& state) {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : state.files) {
    files.push_back({{"device", f.id.device},
                     {"index", f.id.index},
                     {"name", f.name},
                     {"offset", f.offset},
                     {"size", f.size},
                     {"fingerprint_length", f.fingerprintLength},
                     {"fingerprint", f.fingerprint}});
  }
  nlohmann::json j = {{"version", kStateVersion}, {"started", state.started}, {"files", files}};
  // Names come from the file system and need not be UTF-8; replacing bad bytes is better than
  // the exception dump() would throw, and the state matches files by identity, not name.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<TailState> parseTailState(std::string_view json) {
  TailState state;
  if (json.find_first_not_of(" \t\r\n") == std::string_view::npos) return state;
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return fail("svp.bad_tail_state", "tail state: not a JSON object");
  }
  auto version = field<int>(j, "version", "");
  if (!version) return std::unexpected(version.error());
  if (*version != kStateVersion) {
    return fail("svp.bad_tail_state",
                fmt::format("tail state: version {} is not {}", *version, kStateVersion));
  }
  auto started = field<bool>(j, "started", "");
  if (!started) return std::unexpected(started.error());
  state.started = *started;
  auto files = field<std::vector<nlohmann::json>>(j, "files", "");
  if (!files) return std::unexpected(files.error());
  for (std::size_t i = 0; i < files->size(); ++i) {
    const auto& f = (*files)[i];
    auto where = fmt::format("files[{}].", i);
    if (!f.is_object())
      return fail("svp.bad_tail_state", fmt::format("tail state: files[{}] is not an object", i));
    TailFileState st;
    auto device = field<std::uint64_t>(f, "device", where);
    auto index = field<std::uint64_t>(f, "index", where);
    auto name = field<std::string>(f, "name", where);
    auto offset = field<std::uint64_t>(f, "offset", where);
    auto size = field<std::uint64_t>(f, "size", where);
    auto fpLength = field<std::uint64_t>(f, "fingerprint_length", where);
    auto fp = field<std::string>(f, "fingerprint", where);
    for (const auto* r : {&device, &index, &offset, &size, &fpLength}) {
      if (!*r) return std::unexpected(r->error());
    }
    if (!name) return std::unexpected(name.error());
    if (!fp) return std::unexpected(fp.error());
    state.files.push_back(TailFileState{.id = {*device, *index},
                                        .name = std::move(*name),
                                        .offset = *offset,
                                        .size = *size,
                                        .fingerprintLength = *fpLength,
                                        .fingerprint = std::move(*fp)});
  }
  return state;
}

Result<TailBatch> readNew(FileSystem& fs, const std::filesystem::path& dir,
                          std::string_view pattern, const TailState& state,
                          const TailOptions& options) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto run = readOnce(fs, dir, pattern, state, options);
    if (!run) return std::unexpected(run.error());
    // The file system reads by name. If a name now leads to another file than the listing
    // said, a rotation happened in between and what was read may belong to the new file.
    auto after = fs.list(dir);
    if (!after) return std::unexpected(after.error());
    bool stable = std::all_of(run->readAs.begin(), run->readAs.end(), [&](const auto& read) {
      return std::any_of(after->begin(), after->end(), [&](const auto& e) {
        return e.name == read.first && e.id == read.second;
      });
    });
    if (stable) return std::move(run->batch);
  }
  return fail("svp.tail_unstable",
              fmt::format("files in {} were renamed while they were read, {} times in a row",
                          platform::displayPath(dir), kAttempts));
}

}  // namespace pass::hitachi_svp
