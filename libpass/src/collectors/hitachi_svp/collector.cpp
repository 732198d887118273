// hitachi_svp: the collector that runs on a Hitachi DKC/DW SVP and follows its SIM log files.
// Parsing and tailing are pure (sim.hpp, tail.hpp); this file wires them to the configuration,
// the cursor and `pass-agent parse`.

#include <charconv>
#include <memory>
#include <utility>

#include <fmt/format.h>

#include "collectors/hitachi_svp/sim.hpp"
#include "collectors/hitachi_svp/tail.hpp"
#include "pass/collector.hpp"
#include "platform/fs.hpp"

namespace pass::hitachi_svp {

extern const std::string_view kDefaultProfilesJson;

namespace {

using config::AttributeDecl;
using config::Type;

constexpr std::string_view kFamily = "hitachi_svp";
constexpr std::string_view kDefaultProfile = "pass-csv";
constexpr std::string_view kUnparsedCode = "unparsed";

/// The line profiles, each with the array's `encoding` setting when it has one.
Result<std::vector<LineProfile>> loadProfiles(const ArrayConfig& array) {
  auto path = settingPath(array, "profiles");
  Result<std::vector<LineProfile>> profiles;
  if (path.empty()) {
    profiles = parseProfiles(kDefaultProfilesJson, "built-in sim-log-profiles.json");
  } else {
    auto text = platform::readFile(path);
    if (!text) {
      return fail("config", fmt::format("{}: profiles: {}", array.where, text.error().message));
    }
    profiles = parseProfiles(*text, platform::displayPath(path));
    if (!profiles) return fail("config", profiles.error().message);
  }
  if (!profiles) return profiles;
  for (auto& profile : *profiles) {
    auto encoding = encodingSetting(array, profile.encoding);
    if (!encoding) return std::unexpected(encoding.error());
    profile.encoding = *encoding;
  }
  return profiles;
}

/// A line that no profile field explains is still an event: nothing is skipped silently, and
/// the home sees the raw text.
CollectedEvent unparsedLine(std::string_view line, const LineProfile& profile, const Error& why) {
  CollectedEvent e;
  e.code = std::string(kUnparsedCode);
  e.text = why.message;
  e.setRaw(line, profile.encoding);
  return e;
}

class SvpCollector final : public Collector {
 public:
  SvpCollector(ArrayConfig array, LineProfile profile, TailOptions options)
      : Collector(std::move(array)), profile_(std::move(profile)), options_(options) {
    simDir_ = settingPath(this->array(), "sim-dir");
    pattern_ = setting(this->array(), "pattern");
  }

  std::vector<Error> checkPrerequisites() const override {
    auto listed = realFileSystem().list(simDir_);
    if (listed) return {};
    if (listed.error().code == "not_found") return {simDirMissing()};
    return {Error{"config", fmt::format("{}: sim-dir: {}", array().where, listed.error().message)}};
  }

 protected:
  Result<Collection> doCollect(CollectContext& ctx) override {
    TailState state;
    if (ctx.cursor) {
      auto parsed = parseTailState(*ctx.cursor);
      if (!parsed) return std::unexpected(damagedCursor(array(), parsed.error()));
      state = std::move(*parsed);
    }
    auto batch = readNew(*ctx.fs, simDir_, pattern_, state, options_);
    if (!batch) {
      if (batch.error().code == "not_found") return std::unexpected(simDirMissing());
      return std::unexpected(batch.error());
    }
    Collection out;
    out.notes = std::move(batch->notes);
    if (!state.started && !options_.fromHead) {
      out.notes.push_back(
          fmt::format("first run: following {} file(s) in {} from their current "
                      "end; earlier SIMs are not reported",
                      batch->next.files.size(), platform::displayPath(simDir_)));
    }
    for (const TailLine& line : batch->lines) {
      readRecord(
          out, array(), fmt::format("file {}, the line at byte {}", line.file, line.offset),
          [&] {
            if (skipsLine(profile_, line.text)) return;
            auto event = parseSimLine(profile_, line.text);
            if (!event) {
              out.notes.push_back(
                  fmt::format("{} offset {}: {}", line.file, line.offset, event.error().message));
              event = unparsedLine(line.text, profile_, event.error());
            }
            event->id = line.id;
            out.events.push_back(std::move(*event));
          },
          [&](const std::string& failure) {
            auto event = unparsedLine(line.text, profile_, Error{"error", failure});
            event.id = line.id;
            out.events.push_back(std::move(event));
          });
    }
    if (batch->more) out.notes.push_back("more SIM log data than one run reads; continuing");
    out.cursor = toJson(batch->next);
    return out;
  }

 private:
  Error simDirMissing() const {
    return Error{"config", fmt::format("{}: the SIM log directory {} does not exist", array().where,
                                       platform::displayPath(simDir_))};
  }

  LineProfile profile_;
  TailOptions options_;
  std::filesystem::path simDir_;
  std::string pattern_;
};

Result<std::unique_ptr<Collector>> create(const ArrayConfig& array) {
  auto profiles = loadProfiles(array);
  if (!profiles) return std::unexpected(profiles.error());
  const std::string& name = setting(array, "profile");
  const LineProfile* profile = findProfile(*profiles, name);
  if (profile == nullptr) {
    std::string known;
    for (const auto& p : *profiles) known += fmt::format("{}{}", known.empty() ? "" : ", ", p.name);
    return fail("config", fmt::format("{}: profile \"{}\" is not defined (known: {})", array.where,
                                      name, known));
  }
  TailOptions options;
  options.fromHead = setting(array, "from-head") == "true";
  auto maxBytes = uintSetting(array, "max-bytes-per-run", 4096, std::uint64_t{1} << 40);
  if (!maxBytes) return std::unexpected(maxBytes.error());
  options.maxBytes = static_cast<std::size_t>(*maxBytes);
  return std::make_unique<SvpCollector>(array, *profile, options);
}

/// A captured file's lines: the offset where each starts (for its id) and the line without
/// its '\n'.
std::vector<std::pair<std::uint64_t, std::string_view>> splitLines(std::string_view text) {
  std::vector<std::pair<std::uint64_t, std::string_view>> lines;
  for (std::size_t start = 0; start < text.size();) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines.emplace_back(start, text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

/// `pass-agent parse --family hitachi_svp --source sim-log FILE`: the first profile that reads
/// the file's first record line reads the whole file (or the one named by --profile).
Result<std::vector<CollectedEvent>> parseSimLog(std::string_view text, const ArrayConfig& array) {
  auto profiles = loadProfiles(array);
  if (!profiles) return std::unexpected(profiles.error());
  const auto lines = splitLines(text);
  const LineProfile* chosen = nullptr;
  if (const std::string& wanted = setting(array, "profile"); !wanted.empty()) {
    chosen = findProfile(*profiles, wanted);
    if (chosen == nullptr) return fail("config", fmt::format("no profile \"{}\"", wanted));
  }
  std::vector<CollectedEvent> events;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto [offset, line] = lines[i];
    if (chosen == nullptr) {
      // Blank and comment lines before the first record say nothing about the format.
      bool commentSomewhere = false;
      for (const auto& p : *profiles) {
        commentSomewhere = commentSomewhere || skipsLine(p, line);
        if (!skipsLine(p, line) && parseSimLine(p, line)) {
          chosen = &p;
          break;
        }
      }
      if (chosen == nullptr && commentSomewhere) continue;
      if (chosen == nullptr) {
        return fail("svp.bad_line",
                    fmt::format("line {}: no SIM log profile reads it: {}", i + 1, line));
      }
    }
    if (skipsLine(*chosen, line)) continue;
    auto event = parseSimLine(*chosen, line);
    if (!event) {
      return fail(event.error().code, fmt::format("line {} (profile {}): {}", i + 1, chosen->name,
                                                  event.error().message));
    }
    event->id = lineId(offset, line);
    events.push_back(std::move(*event));
  }
  return events;
}

/// `--source ssb`: one 32-byte SSB in hex per line.
Result<std::vector<CollectedEvent>> parseSsbLines(std::string_view text, const ArrayConfig&) {
  std::vector<CollectedEvent> events;
  const auto lines = splitLines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto [offset, line] = lines[i];
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    if (line.ends_with('\r')) line.remove_suffix(1);
    auto ssb = decodeSsb(line);
    if (!ssb) return fail(ssb.error().code, fmt::format("line {}: {}", i + 1, ssb.error().message));
    CollectedEvent e;
    e.id = lineId(offset, line);
    e.code = ssb->referenceCode;
    e.component = ssb->simTypeName;
    e.text = fmt::format("SIM type {} ({})", ssb->simType, ssb->simTypeName);
    e.raw = std::string(line);
    events.push_back(std::move(e));
  }
  return events;
}

}  // namespace

void registerCollector(CollectorRegistry& registry) {
  CollectorInfo info;
  info.family = kFamily;
  info.element = "hitachi-svp";
  info.description =
      "A Hitachi DKC500/600/700/800 or DW700 array (USP, USP V/VM, VSP, VSP G1000, HUS VM; HP "
      "XP12000 to XP7), watched from its SVP by following the SIM log files.";
  info.settings = {
      AttributeDecl{{},
                    "sim-dir",
                    Type::kPath,
                    true,
                    {},
                    "The directory of the SVP's SIM log files; relative paths are relative to "
                    "agent.xml."},
      AttributeDecl{{},
                    "pattern",
                    Type::kString,
                    false,
                    "*.log",
                    "Which files in sim-dir are SIM logs: a name pattern with * and ?, matched "
                    "without regard to case. Rotated files must match too."},
      AttributeDecl{{},
                    "profile",
                    Type::kString,
                    false,
                    kDefaultProfile,
                    "The line profile that reads these files (docs/supported-arrays.md)."},
      AttributeDecl{{},
                    "profiles",
                    Type::kPath,
                    false,
                    {},
                    "A line profile file replacing the built-in "
                    "vendor-codes/hitachi_svp/sim-log-profiles.json, for a format met in the "
                    "field; no rebuild needed."},
      AttributeDecl{{},
                    "from-head",
                    Type::kBool,
                    false,
                    "false",
                    "On the first run, report every SIM already in the files (true) or only "
                    "those written from then on (false)."},
      AttributeDecl{{},
                    "max-bytes-per-run",
                    Type::kUint,
                    false,
                    "16777216",
                    "Bytes of log read per run at most (at least 4096); the rest is read by the "
                    "next runs."},
      encodingAttribute(),
  };
  info.create = create;
  info.sources = {
      ParseSource{"sim-log", "an SVP SIM log file (any known line profile)", parseSimLog},
      ParseSource{"ssb", "one 32-byte SIM SSB in hex per line", parseSsbLines},
  };
  registry.add(std::move(info));
}

}  // namespace pass::hitachi_svp
