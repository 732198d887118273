// hitachi_df: the collector for Hitachi modular arrays (AMS200/500/1000, AMS2100/2300/2500,
// HUS110/130/150). It runs the SNM2 CLI on the appliance, reads the component table of
// `auparts -unit` and reports what changed since the last answer (auparts.hpp, pure); this file
// wires that to the configuration, the CLI, the cursor and `pass-agent parse`.

#include <charconv>
#include <chrono>
#include <filesystem>
#include <memory>
#include <utility>

#include <fmt/format.h>

#include "collectors/hitachi_df/auparts.hpp"
#include "pass/bytes.hpp"
#include "pass/collector.hpp"
#include "pass/crypto.hpp"
#include "pass/vendor_codes.hpp"
#include "platform/fs.hpp"
#include "platform/process.hpp"

#ifndef _WIN32
#include <unistd.h>
#endif

namespace pass::hitachi_df {
namespace {

using config::AttributeDecl;
using config::Type;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kFamily = "hitachi_df";
constexpr std::string_view kUnparsedCode = "unparsed";
/// What a CLI answer may hold at most; auparts of the largest HUS150 is a few tens of KiB.
constexpr std::size_t kMaxAnswer = 4u << 20;

std::string stableId(std::string_view material) {
  auto digest = sha256(asBytes(material));
  digest.resize(16);
  return toHex(digest);
}

/// The first non-empty line of what the CLI said, for messages.
std::string firstLine(std::string_view text) {
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (!line.empty()) return std::string(line.substr(0, 200));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return "(no output)";
}

/// The severity of a code on the DF scale (Hitachi's words serious, moderate, service; see
/// vendor-codes/hitachi_df): from the table, else the section's Alarm entry (a status word we
/// have not met is as bad as the section's Alarm), else serious: the array itself says the part
/// is not Normal.
std::string severityOf(const Transition& t, const std::string& code) {
  const CodeTable* table = builtinCodeTable(kFamily);
  if (table != nullptr) {
    if (const CodeEntry* e = table->find(code); e != nullptr && !e->severity.empty()) {
      return e->severity;
    }
  }
  if (t.recovery()) return "service";
  if (t.to == kAbsent) return "moderate";
  if (table != nullptr) {
    if (const CodeEntry* e = table->find(eventCode(t.section, "Alarm")); e != nullptr) {
      if (!e->severity.empty()) return e->severity;
    }
  }
  return "serious";
}

/// `generation` is that of the snapshot the change was measured against, so the same change
/// read again after a crash (cursor not saved) gets the same id, and a fault that clears and
/// returns gets a new one.
CollectedEvent toEvent(const Transition& t, std::uint64_t generation,
                       const TextEncoding& encoding) {
  CollectedEvent e;
  e.id = stableId(fmt::format("{}\n{}\n{}\n{}", generation, t.key, t.from, t.to));
  e.kind = t.recovery() ? "recovery" : "alert";
  e.code = eventCode(t.section, t.to);
  e.severity = severityOf(t, e.code);
  e.component = t.key;
  if (t.to == kAbsent) {
    e.text = fmt::format("{} is no longer listed by auparts (last status {})", t.key, t.from);
  } else if (t.recovery()) {
    e.text = fmt::format("{} is Normal again (was {})", t.key,
                         t.from == kAbsent ? "not listed" : t.from);
  } else if (t.from.empty() || t.from == kNormal) {
    e.text = fmt::format("{} is {}", t.key, t.to);
  } else {
    e.text = fmt::format("{} changed from {} to {}", t.key,
                         t.from == kAbsent ? "not listed" : t.from, t.to);
  }
  if (t.to == kAbsent) {
    e.raw = t.raw;  // the key: nothing was printed
  } else {
    e.setRaw(t.bytes, encoding);
  }
  return e;
}

/// A row that does not fit its section still reaches the home, with its text.
CollectedEvent unparsedEvent(const BadRow& row, const TextEncoding& encoding) {
  CollectedEvent e;
  e.id = stableId(fmt::format("unparsed\n{}\n{}", row.section, row.raw));
  e.code = std::string(kUnparsedCode);
  e.severity = "moderate";
  e.component = row.section;
  e.text =
      fmt::format("auparts line {}{}: {}", row.line,
                  row.section.empty() ? "" : fmt::format(" (section {})", row.section), row.why);
  e.setRaw(row.bytes, encoding);
  return e;
}

std::vector<CollectedEvent> eventsOf(const Diff& d, std::uint64_t generation,
                                     const TextEncoding& encoding) {
  std::vector<CollectedEvent> events;
  for (const auto& t : d.transitions) events.push_back(toEvent(t, generation, encoding));
  for (const auto& row : d.newUnparsed) events.push_back(unparsedEvent(row, encoding));
  return events;
}

/// The SNM2 CLI commands a run starts.
constexpr const char* kCommands[] = {"auunitinfo", "auparts"};

bool runnable(const std::filesystem::path& program) {
  std::error_code ec;
#ifdef _WIN32
  // CreateProcess adds .exe to a name without one.
  auto exe = program;
  exe += ".exe";
  return std::filesystem::is_regular_file(program, ec) || std::filesystem::is_regular_file(exe, ec);
#else
  return std::filesystem::is_regular_file(program, ec) && ::access(program.c_str(), X_OK) == 0;
#endif
}

class DfCollector final : public Collector {
 public:
  DfCollector(ArrayConfig array, std::chrono::seconds timeout, TextEncoding encoding)
      : Collector(std::move(array)), timeout_(timeout), encoding_(encoding) {
    snm2Dir_ = settingPath(this->array(), "snm2-dir");
    unit_ = setting(this->array(), "unit");
  }

  std::vector<Error> checkPrerequisites() const override {
    std::error_code ec;
    if (!std::filesystem::is_directory(snm2Dir_, ec)) {
      return {Error{"config", fmt::format("{}: snm2-dir: there is no folder {}; snm2-dir must be "
                                          "the SNM2 CLI folder (STONAVM_HOME)",
                                          array().where, platform::displayPath(snm2Dir_))}};
    }
    std::vector<Error> problems;
    for (const char* command : kCommands) {
      const auto program = snm2Dir_ / command;
      if (!runnable(program)) {
        problems.push_back(
            Error{"config", fmt::format("{}: snm2-dir: {} is missing or this user may not run it",
                                        array().where, platform::displayPath(program))});
      }
    }
    return problems;
  }

 protected:
  Result<Collection> doCollect(CollectContext& ctx) override {
    std::optional<Snapshot> previous;
    if (ctx.cursor) {
      auto parsed = parseSnapshot(*ctx.cursor);
      if (!parsed) return std::unexpected(damagedCursor(array(), parsed.error()));
      previous = std::move(*parsed);
    }
    const auto deadline = Clock::now() + timeout_;
    Collection out;
    // The serial is checked once, not every run: it changes only when someone re-registers
    // the unit name in SNM2 or edits agent.xml (then the cursor's serial differs).
    if (!previous || previous->serial != array().serial) {
      auto info = runCli("auunitinfo", deadline);
      if (!info) return std::unexpected(info.error());
      auto serial = parseUnitSerial(*info, encoding_);
      if (!serial) return failBadOutput("auunitinfo", serial.error());
      if (*serial != array().serial) {
        return fail("config",
                    fmt::format("{}: the SNM2 unit \"{}\" is the array with serial {}, not {}: "
                                "the unit name points at another array (check `auunitref` and "
                                "the serial in agent.xml)",
                                array().where, unit_, *serial, array().serial));
      }
      out.notes.push_back(fmt::format("SNM2 unit \"{}\" confirmed as serial {}", unit_, *serial));
    }
    auto answer = runCli("auparts", deadline);
    if (!answer) return std::unexpected(answer.error());
    auto parts = parseAuparts(*answer, encoding_);
    if (!parts) return failBadOutput("auparts", parts.error());

    Diff d = diff(previous ? &*previous : nullptr, *parts);
    d.next.serial = array().serial;
    const std::uint64_t generation = previous ? previous->generation : 0;
    out.events = eventsOf(d, generation, encoding_);
    for (const auto& row : d.newUnparsed) {
      out.notes.push_back(fmt::format("auparts line {}: {}: {}", row.line, row.why, row.raw));
    }
    if (!previous) {
      out.notes.push_back(fmt::format(
          "first run: {} component(s) listed, {} not Normal and reported now; from now on only "
          "changes are reported",
          parts->rows.size(), d.transitions.size()));
    } else if (d.newNormal > 0) {
      out.notes.push_back(
          fmt::format("{} component(s) listed for the first time, all Normal", d.newNormal));
    }
    out.cursor = toJson(d.next);
    return out;
  }

 private:
  /// Runs `<snm2-dir>/<command> -unit <unit>` within what is left of the run's budget; its
  /// standard output, or the array's status as an error.
  Result<std::string> runCli(std::string_view command, Clock::time_point deadline) {
    const auto program = snm2Dir_ / std::string(command);
    platform::ProcessOptions options;
    // SNM2 reads its home folder from STONAVM_HOME; STONAVM_ACT and STONAVM_RSP_PASS answer
    // its confirmation prompts, which would otherwise wait for a keyboard.
    options.env = {{"STONAVM_HOME", platform::displayPath(snm2Dir_)},
                   {"STONAVM_ACT", "on"},
                   {"STONAVM_RSP_PASS", "on"}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    options.timeout = std::max(left, std::chrono::milliseconds(1));
    options.maxOutput = kMaxAnswer;
    const std::string what = fmt::format("{} -unit {}", command, unit_);
    auto r = platform::runProcess({platform::displayPath(program), "-unit", unit_}, options);
    if (!r) {
      const Error& e = r.error();
      if (e.code == "timeout") {
        return fail("hitachi_df.timeout",
                    fmt::format("{} {}: `{}` did not answer within timeout-seconds ({} s); it was "
                                "stopped",
                                kFamily, array().serial, what, timeout_.count()));
      }
      if (e.code == "not_found") {
        return fail("config", fmt::format("{}: snm2-dir: there is no {} ({}); snm2-dir must be the "
                                          "SNM2 CLI folder (STONAVM_HOME)",
                                          array().where, command, e.message));
      }
      return fail("error", fmt::format("{} {}: {}", kFamily, array().serial, e.message));
    }
    if (r->exitCode != 0) {
      return fail(
          "hitachi_df.unreachable",
          fmt::format("{} {}: `{}` failed with exit status {}: {}", kFamily, array().serial, what,
                      r->exitCode, toUtf8(firstLine(r->err.empty() ? r->out : r->err), encoding_)));
    }
    if (r->truncated) {
      return fail("hitachi_df.bad_output", fmt::format("{} {}: `{}` printed more than {} bytes",
                                                       kFamily, array().serial, what, kMaxAnswer));
    }
    return std::move(r->out);
  }

  std::unexpected<Error> failBadOutput(std::string_view command, const Error& e) const {
    return fail("hitachi_df.bad_output", fmt::format("{} {}: `{} -unit {}`: {}", kFamily,
                                                     array().serial, command, unit_, e.message));
  }

  std::chrono::seconds timeout_;
  TextEncoding encoding_;
  std::filesystem::path snm2Dir_;
  std::string unit_;
};

Result<std::unique_ptr<Collector>> create(const ArrayConfig& array) {
  const std::string& unit = setting(array, "unit");
  // The name goes to the CLI as an argument: one starting with '-' would read as an option.
  if (unit.empty() || unit.front() == '-' || unit.find_first_of(" \t\r\n") != std::string::npos) {
    return fail("config", fmt::format("{}: unit \"{}\" is not an SNM2 unit name (as `auunitref` "
                                      "lists it, e.g. HUS110_91110206)",
                                      array.where, unit));
  }
  auto seconds = uintSetting(array, "timeout-seconds", 1, 3600);
  if (!seconds) return std::unexpected(seconds.error());
  auto encoding = encodingSetting(array);
  if (!encoding) return std::unexpected(encoding.error());
  return std::make_unique<DfCollector>(array, std::chrono::seconds(*seconds), *encoding);
}

/// `pass-agent parse --family hitachi_df --source auparts FILE`: what a first run would report
/// from this answer: every component that is not Normal, and every row that does not fit.
Result<std::vector<CollectedEvent>> parseAupartsFile(std::string_view text,
                                                     const ArrayConfig& array) {
  auto encoding = encodingSetting(array);
  if (!encoding) return std::unexpected(encoding.error());
  auto parts = parseAuparts(text, *encoding);
  if (!parts) return std::unexpected(parts.error());
  return eventsOf(diff(nullptr, *parts), 0, *encoding);
}

}  // namespace

void registerCollector(CollectorRegistry& registry) {
  CollectorInfo info;
  info.family = kFamily;
  info.element = "hitachi-df";
  info.description =
      "A Hitachi modular array (AMS200/500/1000, AMS2100/2300/2500, HUS110/130/150), watched "
      "from the appliance through the SNM2 CLI: `auparts -unit` component status, compared "
      "with the previous answer.";
  info.settings = {
      AttributeDecl{{},
                    "snm2-dir",
                    Type::kPath,
                    true,
                    {},
                    "The SNM2 CLI folder (STONAVM_HOME) holding auunitinfo and auparts; relative "
                    "paths are relative to agent.xml."},
      AttributeDecl{{},
                    "unit",
                    Type::kString,
                    true,
                    {},
                    "The array's unit name as registered in SNM2 (`auunitref`), e.g. "
                    "HUS110_91110206. Its serial must be the element's serial."},
      AttributeDecl{{},
                    "timeout-seconds",
                    Type::kUint,
                    false,
                    "60",
                    "The whole run's budget for this array (1 to 3600): a CLI command still "
                    "running then is killed and the array's state is timeout."},
      encodingAttribute(),
  };
  info.create = create;
  info.sources = {
      ParseSource{"auparts",
                  "one captured `auparts -unit` answer; prints the components not Normal",
                  parseAupartsFile},
  };
  registry.add(std::move(info));
}

}  // namespace pass::hitachi_df
