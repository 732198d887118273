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
constexpr std::string_view kEnvSuffix = ".env";
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

/// "<seq:020>.<kind>.env" → seq and kind; anything else is not a spool name.
std::optional<SpoolName> parseName(std::string_view name) {
  if (!name.ends_with(kEnvSuffix)) return std::nullopt;
  name.remove_suffix(kEnvSuffix.size());
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

std::string makeName(std::uint64_t seq, EnvelopeKind kind) {
  return fmt::format("{:020}.{}{}", seq, toString(kind), kEnvSuffix);
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

/// Moves `file` into `dir`/quarantine/ with "<name>.reason" beside it. The reason goes first, so a
/// crash in between leaves at worst an orphan reason file, never an envelope without a reason.
Status moveToQuarantine(const std::filesystem::path& dir, const std::filesystem::path& file,
                        std::string_view reason) {
  auto qdir = dir / kQuarantineDir;
  std::error_code ec;
  if (std::filesystem::create_directory(qdir, ec)) {
    if (auto s = platform::syncDirectory(dir); !s) return s;
  } else if (ec) {
    return fsError(ec, "cannot create quarantine directory", qdir);
  }
  auto target = qdir / file.filename();
  auto reasonFile = qdir / (fileName(file) + std::string(kReasonSuffix));
  if (auto s = platform::writeFileAtomic(reasonFile, oneLine(reason) + "\n"); !s) return s;
  return platform::renameDurable(file, target);
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

  std::vector<std::filesystem::path> temps;
  std::vector<std::filesystem::path> files;
  std::vector<std::pair<std::filesystem::path, std::string>> rejects;
  for (std::filesystem::directory_iterator it(dir, ec), end; it != end; it.increment(ec)) {
    if (ec) break;
    auto name = fileName(it->path());
    if (name.starts_with(platform::kTempPrefix)) {
      temps.push_back(it->path());
      continue;
    }
    std::error_code typeEc;
    bool isDir = it->is_directory(typeEc);
    if (isDir && name == kQuarantineDir) continue;
    if (!it->is_regular_file(typeEc)) {
      rejects.emplace_back(it->path(), "not a regular file");
      continue;
    }
    files.push_back(it->path());
  }
  if (ec) return fsError(ec, "cannot list spool directory", dir);

  // Temp files are envelopes whose push never completed: the caller was not told they were
  // stored, so they are deleted, not recovered.
  for (const auto& temp : temps) {
    std::filesystem::remove(temp, ec);
    if (ec) return fsError(ec, "cannot remove stray temp file", temp);
  }
  if (!temps.empty()) {
    if (auto s = platform::syncDirectory(dir); !s) return std::unexpected(s.error());
  }

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
    spool.entries_.push_back(SpoolEntry{parsed->seq, parsed->kind, data->size(), file});
    spool.bytes_ += data->size();
  }

  for (const auto& [file, reason] : rejects) {
    if (auto s = moveToQuarantine(dir, file, reason); !s) return std::unexpected(s.error());
  }
  return spool;
}

Result<std::vector<std::uint64_t>> Spool::push(std::uint64_t seq, EnvelopeKind kind,
                                               ByteView envelope) {
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
  std::uint64_t total = bytes_ + envelope.size();
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
                    limits_.maxBytes, toString(kind), envelope.size(), seq,
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
      bytes_ -= it->size;
      entries_.erase(it);
    }
    if (auto s = platform::syncDirectory(dir_); !s) return std::unexpected(s.error());
  }

  auto path = dir_ / makeName(seq, kind);
  if (auto s = platform::writeFileAtomic(path, asString(envelope), true); !s) {
    return std::unexpected(s.error());
  }
  // Drops may have moved the insertion point.
  pos = std::lower_bound(entries_.begin(), entries_.end(), seq,
                         [](const SpoolEntry& e, std::uint64_t s) { return e.seq < s; });
  entries_.insert(pos, SpoolEntry{seq, kind, envelope.size(), path});
  bytes_ += envelope.size();
  return drops;
}

Result<Bytes> Spool::read(const SpoolEntry& entry) const {
  auto data = platform::readFile(entry.path);
  if (!data) return std::unexpected(data.error());
  return Bytes(data->begin(), data->end());
}

Status Spool::remove(std::uint64_t seq) {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const SpoolEntry& e) { return e.seq == seq; });
  if (it == entries_.end()) {
    return fail("not_found",
                fmt::format("spool {}: no envelope with seq {}", platform::displayPath(dir_), seq));
  }
  std::error_code ec;
  // A file already gone is what we wanted; only a real failure keeps the entry.
  std::filesystem::remove(it->path, ec);
  if (ec) return fsError(ec, "cannot remove", it->path);
  bytes_ -= it->size;
  entries_.erase(it);
  return platform::syncDirectory(dir_);
}

Status Spool::quarantine(std::uint64_t seq, std::string_view reason) {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const SpoolEntry& e) { return e.seq == seq; });
  if (it == entries_.end()) {
    return fail("not_found",
                fmt::format("spool {}: no envelope with seq {}", platform::displayPath(dir_), seq));
  }
  if (auto s = moveToQuarantine(dir_, it->path, reason); !s) return s;
  bytes_ -= it->size;
  entries_.erase(it);
  return {};
}

std::vector<QuarantineEntry> Spool::quarantined() const {
  std::vector<QuarantineEntry> out;
  auto qdir = dir_ / kQuarantineDir;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(qdir, ec), end; !ec && it != end; it.increment(ec)) {
    auto name = fileName(it->path());
    if (name.ends_with(kReasonSuffix) || name.starts_with(platform::kTempPrefix)) continue;
    QuarantineEntry entry;
    entry.file = name;
    if (auto parsed = parseName(name)) {
      entry.seq = parsed->seq;
      entry.kind = parsed->kind;
    }
    auto reason = platform::readFile(qdir / (name + std::string(kReasonSuffix)));
    if (reason) {
      entry.reason = reason->substr(0, reason->find('\n'));
    } else {
      entry.reason = fmt::format("(no reason recorded: {})", reason.error().message);
    }
    out.push_back(std::move(entry));
  }
  std::sort(out.begin(), out.end(), [](const QuarantineEntry& a, const QuarantineEntry& b) {
    return std::tie(a.seq, a.file) < std::tie(b.seq, b.file);
  });
  return out;
}

}  // namespace pass
