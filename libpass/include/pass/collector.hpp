#pragma once
/// Collectors find what is new on one array since the last run and hand it to the pipeline.
/// The base class owns timing, the exception boundary and the array's status; a collector
/// writes only doCollect(). Everything a collector touches comes through its CollectContext:
/// clock, file system, cursor (its durable memory between runs) and log.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pass/config.hpp"
#include "pass/result.hpp"

namespace pass {

/// One thing an array reported, normalised across families (docs/protocol.md, report events).
struct CollectedEvent {
  /// Stable for the array: the same record read twice gets the same id, so that the home can
  /// drop a repeat after a crash between spooling and saving the cursor.
  std::string id;
  std::string kind = "alert";  // "alert" or "recovery"
  std::string code;            // the vendor's code as text: SIM reference code "307080", ...
  std::string severity;        // on the family's own scale (Hitachi: acute ... service)
  std::optional<std::int64_t> occurredMs;
  std::string component;  // failed part or location, as the array names it
  std::string text;       // description as the array gave it
  std::string raw;        // the source record, so that nothing undecoded is lost
};

/// A file's identity: device and file index (inode; volume serial and file index on Windows).
/// It survives a rename, so a rotated log is followed by identity, not by name.
struct FileId {
  std::uint64_t device = 0;
  std::uint64_t index = 0;
  friend bool operator==(const FileId&, const FileId&) = default;
};

/// The file system as collectors see it; tests substitute their own.
class FileSystem {
 public:
  virtual ~FileSystem() = default;
  struct Entry {
    std::string name;  // file name within the directory, UTF-8
    FileId id;
    std::uint64_t size = 0;
  };
  /// Regular files directly in `dir`, in no particular order. "not_found" when `dir` is missing.
  virtual Result<std::vector<Entry>> list(const std::filesystem::path& dir) = 0;
  /// Up to `maxBytes` from `offset` (fewer at the end of the file).
  virtual Result<std::string> read(const std::filesystem::path& file, std::uint64_t offset,
                                   std::size_t maxBytes) = 0;
};

/// The machine's file system (platform code underneath).
FileSystem& realFileSystem();

/// What one run of a collector found. `cursor` is the collector's memory after this run; the
/// agent saves it only once the events are durably in the spool.
struct Collection {
  std::vector<CollectedEvent> events;
  std::optional<std::string> cursor;
  std::vector<std::string> notes;  // worth a log line: a rotated or truncated log, a baseline
};

using LogFunction = std::function<void(std::string_view level, std::string_view message)>;

/// Everything a collector may touch.
struct CollectContext {
  std::function<std::uint64_t()> clock;  // ms since the epoch
  FileSystem* fs = nullptr;
  std::optional<std::string> cursor;  // what the last successful run left, if any
  LogFunction log;
};

/// How the last collection of one array went; carried in every heartbeat.
struct ArrayStatus {
  std::string family;
  std::string serial;
  std::string name;
  /// "ok", or the error class: "unreachable", "login_failed", "bad_output", "timeout",
  /// "config", "error".
  std::string state;
  std::string message;  // the error's sentence; empty when ok
  std::uint64_t lastRunMs = 0;
  std::optional<std::uint64_t> lastSuccessMs;
  std::uint64_t durationMs = 0;
  std::uint64_t newEvents = 0;
};

/// Maps an error code of a collector to an ArrayStatus state ("collector.unreachable" and
/// "unreachable" both give "unreachable"; unknown codes give "error").
std::string statusState(std::string_view errorCode);

class Collector {
 public:
  explicit Collector(ArrayConfig array) : array_(std::move(array)) {}
  virtual ~Collector() = default;
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  /// Runs doCollect() inside the exception boundary and times it. Never throws: a failure is
  /// the array's status, and the other arrays go on.
  struct Outcome {
    Result<Collection> result;
    ArrayStatus status;
  };
  Outcome collect(CollectContext& ctx);

  const ArrayConfig& array() const { return array_; }

 protected:
  /// The collector's one job: what is new since ctx.cursor. Errors carry a code that
  /// statusState() understands.
  virtual Result<Collection> doCollect(CollectContext& ctx) = 0;

 private:
  ArrayConfig array_;
};

/// A way to decode one captured output without the array (`pass-agent parse`).
struct ParseSource {
  std::string_view name;  // "sim-log"
  std::string_view description;
  std::function<Result<std::vector<CollectedEvent>>(std::string_view text,
                                                    const ArrayConfig& array)>
      parse;
};

/// What a collector declares once: its configuration element and how to build it.
struct CollectorInfo {
  std::string_view family;   // "hitachi_svp"
  std::string_view element;  // "hitachi-svp", under pass-agent/arrays
  std::string_view description;
  std::vector<config::AttributeDecl> settings;  // the element's own attributes
  std::function<Result<std::unique_ptr<Collector>>(const ArrayConfig&)> create;
  std::vector<ParseSource> sources;
};

class CollectorRegistry {
 public:
  void add(CollectorInfo info);
  const CollectorInfo* find(std::string_view family) const;
  const CollectorInfo* findByElement(std::string_view element) const;
  const std::vector<CollectorInfo>& all() const { return collectors_; }

 private:
  std::vector<CollectorInfo> collectors_;
};

/// Registers the collectors this build includes (CMake options PASS_COLLECTOR_<NAME>).
void registerBuiltinCollectors(CollectorRegistry& registry);

/// The registry of the built-in collectors, built on first use.
const CollectorRegistry& builtinCollectors();

/// The collector for one configured array; "config" errors name the array's line.
Result<std::unique_ptr<Collector>> createCollector(const ArrayConfig& array);

}  // namespace pass
