#include "pass/collector.hpp"

#include <array>
#include <charconv>
#include <chrono>
#include <exception>
#include <utility>

#include <fmt/format.h>

#include "platform/fs.hpp"

namespace pass {

// Each collector's folder defines <family>::registerCollector.
#ifdef PASS_COLLECTOR_HITACHI_SVP
namespace hitachi_svp {
void registerCollector(CollectorRegistry& registry);
}
#endif
#ifdef PASS_COLLECTOR_HITACHI_DF
namespace hitachi_df {
void registerCollector(CollectorRegistry& registry);
}
#endif
#ifdef PASS_COLLECTOR_HPE_3PAR
namespace hpe_3par {
void registerCollector(CollectorRegistry& registry);
}
#endif
#ifdef PASS_COLLECTOR_NIMBLE
namespace nimble {
void registerCollector(CollectorRegistry& registry);
}
#endif

namespace {

constexpr std::array<std::string_view, 6> kStates = {"unreachable", "login_failed", "bad_output",
                                                     "timeout",     "config",       "pin_mismatch"};

std::uint64_t steadyMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace

std::string statusState(std::string_view errorCode) {
  auto dot = errorCode.rfind('.');
  auto last = dot == std::string_view::npos ? errorCode : errorCode.substr(dot + 1);
  for (auto state : kStates) {
    if (last == state) return std::string(state);
  }
  return "error";
}

Collector::Outcome Collector::collect(CollectContext& ctx) {
  const auto startedSteady = steadyMs();
  ArrayStatus status;
  status.family = array_.family;
  status.serial = array_.serial;
  status.name = array_.name;
  status.lastRunMs = ctx.clock();
  Result<Collection> result = fail("error", "the collector did not run");
  try {
    result = doCollect(ctx);
  } catch (const std::exception& e) {
    // The boundary: a collector bug must cost one array's run, not the agent's.
    result = fail("error", fmt::format("{}: unexpected failure while collecting: {}",
                                       arrayLabel(array_), e.what()));
  } catch (...) {
    result = fail("error", fmt::format("{}: unexpected failure while collecting (not a standard "
                                       "exception)",
                                       arrayLabel(array_)));
  }
  status.durationMs = steadyMs() - startedSteady;
  if (result) {
    status.state = "ok";
    status.lastSuccessMs = status.lastRunMs;
    status.newEvents = result->events.size();
    if (const auto& failures = result->recordFailures; !failures.empty()) {
      // Its events (the failing records among them) are still stored; the state says a record
      // could not be read, where, and why.
      status.state = "error";
      status.message =
          toUtf8(failures.size() == 1 ? failures.front()
                                      : fmt::format("{} (and {} more record(s) like it this run)",
                                                    failures.front(), failures.size() - 1));
    }
  } else {
    status.state = statusState(result.error().code);
    // Messages quote what the array said; the status travels in JSON.
    status.message = toUtf8(result.error().message);
  }
  return Outcome{std::move(result), std::move(status)};
}

void readRecord(Collection& out, const ArrayConfig& array, std::string_view where,
                const std::function<void()>& read,
                const std::function<void(const std::string& failure)>& fallback) {
  std::string what;
  try {
    read();
    return;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "not a standard exception";
  }
  out.recordFailures.push_back(fmt::format(
      "{}: unexpected failure while reading {}: {}; the record is sent unparsed with its bytes",
      arrayLabel(array), where, what));
  fallback(out.recordFailures.back());
}

std::string arrayLabel(const ArrayConfig& array) {
  if (array.name.empty()) return fmt::format("{} {}", array.family, array.serial);
  return fmt::format("{} {} ({})", array.family, array.serial, array.name);
}

Error pinMismatch(const ArrayConfig& array, std::string_view what, std::string_view pinned,
                  std::string_view seen) {
  return Error{"collector.pin_mismatch",
               fmt::format("{} {}: the array's {} is not the one pinned on first contact (pinned "
                           "{}, now {}); if it was replaced on purpose, run `pass-agent "
                           "forget-pin --array {}`, otherwise someone may be in between",
                           array.family, array.serial, what, pinned, seen, array.serial)};
}

const std::string& setting(const ArrayConfig& array, std::string_view name) {
  static const std::string kEmpty;
  auto it = array.settings.find(name);
  return it == array.settings.end() ? kEmpty : it->second;
}

std::filesystem::path settingPath(const ArrayConfig& array, std::string_view name) {
  const std::string& value = setting(array, name);
  if (value.empty()) return {};
  std::filesystem::path p = platform::pathFromUtf8(value);
  return p.is_absolute() ? p : (array.configDir / p).lexically_normal();
}

Result<std::uint64_t> uintSetting(const ArrayConfig& array, std::string_view name,
                                  std::uint64_t min, std::uint64_t max) {
  const std::string& text = setting(array, name);
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
      value > max) {
    return fail("config", fmt::format("{}: {} must be a number from {} to {}, got \"{}\"",
                                      array.where, name, min, max, text));
  }
  return value;
}

config::AttributeDecl encodingAttribute() {
  return config::AttributeDecl{
      {},
      "encoding",
      config::Type::kString,
      false,
      {},
      "The character encoding of the array's text: utf-8, cp932 (Shift-JIS, as Japanese Windows "
      "writes it), windows-1252 or iso-8859-1. Unset: utf-8 (hitachi_svp: the line profile's). "
      "Bytes that are not text in it arrive as U+FFFD, their exact bytes in raw_b64."};
}

Result<TextEncoding> encodingSetting(const ArrayConfig& array, const TextEncoding& fallback) {
  const std::string& name = setting(array, "encoding");
  if (name.empty()) return fallback;
  auto encoding = TextEncoding::named(name);
  if (!encoding) {
    return fail("config", fmt::format("{}: {}", array.where, encoding.error().message));
  }
  return encoding;
}

Error damagedCursor(const ArrayConfig& array, const Error& why) {
  return Error{"error", fmt::format("the cursor of {} {} is damaged ({}); move "
                                    "state/cursors/{}.json aside to start over",
                                    array.family, array.serial, why.message, array.key())};
}

Result<std::string> readSecret(const ArrayConfig& array, std::string_view name) {
  auto path = settingPath(array, name);
  if (path.empty()) return fail("config", fmt::format("{}: {} is not set", array.where, name));
  auto text = platform::readFile(path);
  if (!text) {
    return fail("config", fmt::format("{}: {}: {}", array.where, name, text.error().message));
  }
  std::string_view first = *text;
  first = first.substr(0, first.find('\n'));
  if (first.ends_with('\r')) first.remove_suffix(1);
  if (first.empty()) {
    return fail("config", fmt::format("{}: {}: the first line of {} is empty", array.where, name,
                                      platform::displayPath(path)));
  }
  return std::string(first);
}

void checkSecret(const ArrayConfig& array, std::string_view name, std::vector<Error>& problems) {
  if (setting(array, name).empty()) return;
  if (auto secret = readSecret(array, name); !secret) problems.push_back(secret.error());
}

void CollectorRegistry::add(CollectorInfo info) { collectors_.push_back(std::move(info)); }

const CollectorInfo* CollectorRegistry::find(std::string_view family) const {
  for (const auto& c : collectors_) {
    if (c.family == family) return &c;
  }
  return nullptr;
}

const CollectorInfo* CollectorRegistry::findByElement(std::string_view element) const {
  for (const auto& c : collectors_) {
    if (c.element == element) return &c;
  }
  return nullptr;
}

void registerBuiltinCollectors([[maybe_unused]] CollectorRegistry& registry) {
#ifdef PASS_COLLECTOR_HITACHI_SVP
  hitachi_svp::registerCollector(registry);
#endif
#ifdef PASS_COLLECTOR_HITACHI_DF
  hitachi_df::registerCollector(registry);
#endif
#ifdef PASS_COLLECTOR_HPE_3PAR
  hpe_3par::registerCollector(registry);
#endif
#ifdef PASS_COLLECTOR_NIMBLE
  nimble::registerCollector(registry);
#endif
}

const CollectorRegistry& builtinCollectors() {
  static const CollectorRegistry kRegistry = [] {
    CollectorRegistry r;
    registerBuiltinCollectors(r);
    return r;
  }();
  return kRegistry;
}

Result<std::unique_ptr<Collector>> createCollector(const ArrayConfig& array) {
  const CollectorInfo* info = builtinCollectors().find(array.family);
  if (info == nullptr) {
    return fail("config",
                fmt::format("{}: this build has no {} collector", array.where, array.family));
  }
  return info->create(array);
}

}  // namespace pass
