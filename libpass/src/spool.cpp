#include "pass/spool.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <system_error>
#include <tuple>

#include <fmt/format.h>

#include "pass/envelope.hpp"
#include "platform/fs.hpp"

namespace pass {
namespace {

constexpr std::string_view kQuarantineDir = "quarantine";
constexpr std::string_view kHeldDir = "held";
constexpr std::string_view kEnvSuffix = ".env";
constexpr std::string_view kCopySuffix = ".copy";
constexpr std::string_view kReasonSuffix = ".reason";
constexpr std::size_t kSeqDigits = 20;

std::string fileName(const std::filesystem::path& p) { return platform::displayPath(p.filename()); }

std::optional<EnvelopeKind> parseKind(std::string_view text) {
  for (auto kind : {EnvelopeKind::kReport, EnvelopeKind::kHeartbeat, EnvelopeKind::kTest}) {
    if (toString(kind) == text) return kind;
  }
  return std::nullopt;
}

struct SpoolName {
  std::uint64_t seq = 0;
  EnvelopeKind kind = EnvelopeKind::kReport;
};

/// "<seq:020>.<kind><suffix>" → seq and kind; anything else is not a spool name.
std::optional<SpoolName> parseName(std::string_view name, std::string_view suffix = kEnvSuffix) {
  if (!name.ends_with(suffix)) return std::nullopt;
  name.remove_suffix(suffix.size());
  if (name.size() < kSeqDigits + 2 || name[kSeqDigits] != '.') return std::nullopt;
  auto digits = name.substr(0, kSeqDigits);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  SpoolName out;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out.seq);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  auto kind = parseKind(name.substr(kSeqDigits + 1));
  if (!kind) return std::nullopt;
  out.kind = *kind;
  return out;
}

std::string makeName(std::uint64_t seq, EnvelopeKind kind, std::string_view suffix = kEnvSuffix) {
  return fmt::format("{:020}.{}{}", seq, toString(kind), suffix);
}

std::string oneLine(std::string_view text) {
  std::string out(text);
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  return out;
}

std::unexpected<Error> fsError(const std::error_code& ec, std::string_view what,
                               const std::filesystem::path& p) {
  return fail("io_error", fmt::format("{} {}: {}", what, platform::displayPath(p), ec.message()));
}

/// Moves `file` into `dir`/`aside`/ (quarantine/ or held/) with "<name>.reason" beside it. The
/// reason goes first, so a crash in between leaves at worst an orphan reason file, never a file
/// without a reason.
Status moveAside(const std::filesystem::path& dir, std::string_view aside,
                 const std::filesystem::path& file, std::string_view reason) {
  auto qdir = dir / aside;
  std::error_code ec;
  if (std::filesystem::create_directory(qdir, ec)) {
    if (auto s = platform::syncDirectory(dir); !s) return s;
  } else if (ec) {
    return fsError(ec, fmt::format("cannot create {} directory", aside), qdir);
  }
  auto target = qdir / file.filename();
  auto reasonFile = qdir / (fileName(file) + std::string(kReasonSuffix));
  if (auto s = platform::writeFileAtomic(reasonFile, oneLine(reason) + "\n"); !s) return s;
  return platform::renameDurable(file, target);
}

Status moveToQuarantine(const std::filesystem::path& dir, const std::filesystem::path& file,
                        std::string_view reason) {
  return moveAside(dir, kQuarantineDir, file, reason);
}

/// A file set aside in quarantine/ or held/ and the first line of its reason.
struct AsideFile {
  std::string name;
  std::string reason;
};

std::vector<AsideFile> listAside(const std::filesystem::path& dir) {
  std::vector<AsideFile> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    auto name = fileName(it->path());
    if (name.ends_with(kReasonSuffix) || name.starts_with(platform::kTempPrefix)) continue;
    auto reason = platform::readFile(dir / (name + std::string(kReasonSuffix)));
    out.push_back({name, reason ? reason->substr(0, reason->find('\n'))
                                : fmt::format("(no reason recorded: {})", reason.error().message)});
  }
  return out;
}

/// The spooled entry with `seq`; "not_found" when there is none.
Result<std::vector<SpoolEntry>::iterator> findEntry(std::vector<SpoolEntry>& entries,
                                                    const std::filesystem::path& dir,
                                                    std::uint64_t seq) {
  auto it = std::find_if(entries.begin(), entries.end(),
                         [&](const SpoolEntry& e) { return e.seq == seq; });
  if (it == entries.end()) {
    return fail("not_found",
                fmt::format("spool {}: no envelope with seq {}", platform::displayPath(dir), seq));
  }
  return it;
}

Status removeFile(const std::filesystem::path& file) {
  std::error_code ec;
  // A file already gone is what we wanted; only a real failure counts.
  std::filesystem::remove(file, ec);
  if (ec) return fsError(ec, "cannot remove", file);
  return {};
}

}  // namespace

std::string_view toString(EnvelopeKind kind) {
  switch (kind) {
    case EnvelopeKind::kReport:
      return "report";
    case EnvelopeKind::kHeartbeat:
      return "heartbeat";
    case EnvelopeKind::kTest:
      return "test";
  }
  return "unknown";
}

Result<Spool> Spool::open(const std::filesystem::path& dir, SpoolLimits limits) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fsError(ec, "cannot create spool directory", dir);

  Spool spool;
  spool.dir_ = dir;
  spool.limits_ = limits;

  // Temp files are envelopes whose push never completed: the caller was not told they were
  // stored, so they are deleted, not recovered.
  for (const auto& d : {dir, dir / kHeldDir}) {
    if (auto s = platform::removeTempFiles(d); !s) return std::unexpected(s.error());
  }

  std::vector<std::filesystem::path> files;
  std::vector<std::filesystem::path> copies;
  std::vector<std::pair<std::filesystem::path, std::string>> rejects;
  for (std::filesystem::directory_iterator it(dir, ec), end; it != end; it.increment(ec)) {
    if (ec) break;
    auto name = fileName(it->path());
    std::error_code typeEc;
    bool isDir = it->is_directory(typeEc);
    if (isDir && (name == kQuarantineDir || name == kHeldDir)) continue;
    if (name.ends_with(kCopySuffix) && parseName(name, kCopySuffix)) {
      copies.push_back(it->path());
      continue;
    }
    if (!it->is_regular_file(typeEc)) {
      rejects.emplace_back(it->path(), "not a regular file");
      continue;
    }
    files.push_back(it->path());
  }
  if (ec) return fsError(ec, "cannot list spool directory", dir);

  std::sort(files.begin(), files.end());  // zero-padded seqs sort like numbers
  for (const auto& file : files) {
    auto name = fileName(file);
    auto parsed = parseName(name);
    if (!parsed) {
      rejects.emplace_back(file, fmt::format("unrecognised name: {}", name));
      continue;
    }
    if (!spool.entries_.empty() && spool.entries_.back().seq == parsed->seq) {
      rejects.emplace_back(file, fmt::format("duplicate: seq {} is already spooled as {}",
                                             parsed->seq, fileName(spool.entries_.back().path)));
      continue;
    }
    auto data = platform::readFile(file);
    if (!data) return std::unexpected(data.error());
    auto header = parseEnvelopeHeader(asBytes(*data));
    if (!header) {
      rejects.emplace_back(file, fmt::format("corrupt: {}", header.error().message));
      continue;
    }
    spool.entries_.push_back(SpoolEntry{parsed->seq, parsed->kind, data->size(), file, {}});
    spool.bytes_ += data->size();
  }

  for (const auto& [file, reason] : rejects) {
    if (auto s = moveToQuarantine(dir, file, reason); !s) return std::unexpected(s.error());
  }
  if (auto s = spool.matchCopies(copies); !s) return std::unexpected(s.error());
  return spool;
}

Status Spool::matchCopies(const std::vector<std::filesystem::path>& copies) {
  bool removed = false;
  for (const auto& held : held()) {
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const SpoolEntry& e) { return e.seq == held.seq; });
    if (it == entries_.end()) continue;
    // The copy is held already: the envelope was refused, only its removal did not happen.
    if (auto s = removeFile(it->path); !s) return s;
    bytes_ -= it->size;
    entries_.erase(it);
    removed = true;
  }
  for (const auto& copy : copies) {
    auto parsed = parseName(fileName(copy), kCopySuffix);
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const SpoolEntry& e) {
      return e.seq == parsed->seq && e.kind == parsed->kind;
    });
    std::error_code ec;
    auto size = std::filesystem::file_size(copy, ec);
    if (it != entries_.end() && !ec) {
      it->copy = copy;
      it->size += size;
      bytes_ += size;
      continue;
    }
    // Written before its envelope, removed after it: alone, its push or removal did not complete.
    if (auto s = removeFile(copy); !s) return s;
    removed = true;
  }
  if (!removed) return {};
  return platform::syncDirectory(dir_);
}

Result<std::vector<std::uint64_t>> Spool::push(std::uint64_t seq, EnvelopeKind kind,
                                               ByteView envelope, ByteView copy) {
  auto pos = std::lower_bound(entries_.begin(), entries_.end(), seq,
                              [](const SpoolEntry& e, std::uint64_t s) { return e.seq < s; });
  if (pos != entries_.end() && pos->seq == seq) {
    return fail("duplicate_seq",
                fmt::format("spool {}: seq {} is already spooled as {}",
                            platform::displayPath(dir_), seq, fileName(pos->path)));
  }
  if (auto header = parseEnvelopeHeader(envelope); !header) {
    return fail("bad_envelope",
                fmt::format("spool {}: refusing {} seq {}: {}", platform::displayPath(dir_),
                            toString(kind), seq, header.error().message));
  }

  // Plan the drops first: if even dropping every heartbeat leaves no room, nothing is touched.
  std::uint64_t count = entries_.size() + 1;
  std::uint64_t total = bytes_ + envelope.size() + copy.size();
  std::vector<std::uint64_t> drops;
  for (const auto& e : entries_) {
    if (count <= limits_.maxEnvelopes && total <= limits_.maxBytes) break;
    if (e.kind != EnvelopeKind::kHeartbeat) continue;
    drops.push_back(e.seq);
    --count;
    total -= e.size;
  }
  if (count > limits_.maxEnvelopes || total > limits_.maxBytes) {
    return fail(
        "spool_full",
        fmt::format("spool {} is full: {} envelopes, {} bytes (limits: {} envelopes, {} "
                    "bytes); a {} of {} bytes (seq {}) does not fit even after dropping "
                    "all {} heartbeats, so nothing was dropped and it was not spooled",
                    platform::displayPath(dir_), entries_.size(), bytes_, limits_.maxEnvelopes,
                    limits_.maxBytes, toString(kind), envelope.size() + copy.size(), seq,
                    std::count_if(entries_.begin(), entries_.end(), [](const SpoolEntry& e) {
                      return e.kind == EnvelopeKind::kHeartbeat;
                    })));
  }

  if (!drops.empty()) {
    for (auto dropSeq : drops) {
      auto it = std::find_if(entries_.begin(), entries_.end(),
                             [&](const SpoolEntry& e) { return e.seq == dropSeq; });
      std::error_code ec;
      std::filesystem::remove(it->path, ec);
      if (ec) return fsError(ec, "cannot drop heartbeat", it->path);
      if (!it->copy.empty()) {
        if (auto s = removeFile(it->copy); !s) return std::unexpected(s.error());
      }
      bytes_ -= it->size;
      entries_.erase(it);
    }
    if (auto s = platform::syncDirectory(dir_); !s) return std::unexpected(s.error());
  }

  std::filesystem::path copyPath;
  if (!copy.empty()) {
    copyPath = dir_ / makeName(seq, kind, kCopySuffix);
    if (auto s = platform::writeFileAtomic(copyPath, asString(copy), true); !s) {
      return std::unexpected(s.error());
    }
  }
  auto path = dir_ / makeName(seq, kind);
  if (auto s = platform::writeFileAtomic(path, asString(envelope), true); !s) {
    // Best effort: a copy left alone is deleted when the spool is next opened.
    if (!copyPath.empty()) (void)removeFile(copyPath);
    return std::unexpected(s.error());
  }
  // Drops may have moved the insertion point.
  pos = std::lower_bound(entries_.begin(), entries_.end(), seq,
                         [](const SpoolEntry& e, std::uint64_t s) { return e.seq < s; });
  const auto size = envelope.size() + copy.size();
  entries_.insert(pos, SpoolEntry{seq, kind, size, path, copyPath});
  bytes_ += size;
  return drops;
}

Result<Bytes> Spool::read(const SpoolEntry& entry) const {
  auto data = platform::readFile(entry.path);
  if (!data) return std::unexpected(data.error());
  return Bytes(data->begin(), data->end());
}

Status Spool::remove(std::uint64_t seq) {
  auto found = findEntry(entries_, dir_, seq);
  if (!found) return std::unexpected(found.error());
  auto it = *found;
  // The envelope goes first: a copy left alone is deleted when the spool is next opened.
  if (auto s = removeFile(it->path); !s) return s;
  if (!it->copy.empty()) {
    if (auto s = removeFile(it->copy); !s) return s;
  }
  bytes_ -= it->size;
  entries_.erase(it);
  return platform::syncDirectory(dir_);
}

Status Spool::quarantine(std::uint64_t seq, std::string_view reason) {
  auto found = findEntry(entries_, dir_, seq);
  if (!found) return std::unexpected(found.error());
  auto it = *found;
  if (auto s = moveToQuarantine(dir_, it->path, reason); !s) return s;
  bytes_ -= it->size;
  entries_.erase(it);
  return {};
}

std::vector<QuarantineEntry> Spool::quarantined() const {
  std::vector<QuarantineEntry> out;
  for (auto& aside : listAside(dir_ / kQuarantineDir)) {
    QuarantineEntry entry;
    entry.file = std::move(aside.name);
    if (auto parsed = parseName(entry.file)) {
      entry.seq = parsed->seq;
      entry.kind = parsed->kind;
    }
    entry.reason = std::move(aside.reason);
    out.push_back(std::move(entry));
  }
  std::sort(out.begin(), out.end(), [](const QuarantineEntry& a, const QuarantineEntry& b) {
    return std::tie(a.seq, a.file) < std::tie(b.seq, b.file);
  });
  return out;
}

}  // namespace pass

namespace pass {

Status Spool::hold(std::uint64_t seq, std::string_view reason) {
  auto found = findEntry(entries_, dir_, seq);
  if (!found) return std::unexpected(found.error());
  auto it = *found;
  if (it->copy.empty()) {
    return fail("no_copy", fmt::format("spool {}: {} has no copy to seal again",
                                       platform::displayPath(dir_), fileName(it->path)));
  }
  // The copy goes first: a crash before the envelope's removal leaves an envelope whose copy is
  // held, which open() removes.
  if (auto s = moveAside(dir_, kHeldDir, it->copy, reason); !s) return s;
  if (auto s = removeFile(it->path); !s) return s;
  bytes_ -= it->size;
  entries_.erase(it);
  return platform::syncDirectory(dir_);
}

std::vector<HeldEntry> Spool::held() const {
  std::vector<HeldEntry> out;
  const auto dir = dir_ / kHeldDir;
  for (auto& aside : listAside(dir)) {
    auto parsed = parseName(aside.name, kCopySuffix);
    if (!parsed) continue;
    out.push_back(HeldEntry{parsed->seq, parsed->kind, std::move(aside.reason), dir / aside.name});
  }
  std::sort(out.begin(), out.end(),
            [](const HeldEntry& a, const HeldEntry& b) { return a.seq < b.seq; });
  return out;
}

Status Spool::release(const HeldEntry& entry) {
  if (auto s = removeFile(entry.copy); !s) return s;
  auto reason = entry.copy;
  reason += std::string(kReasonSuffix);
  if (auto s = removeFile(reason); !s) return s;
  return platform::syncDirectory(entry.copy.parent_path());
}

}  // namespace pass
