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
#include "pass/text.hpp"

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
  std::string raw;        // the source record as text (UTF-8), so that nothing undecoded is lost
  /// The source record's exact bytes, only when `raw` is not them: a code page was decoded, or
  /// bytes that are not UTF-8 (or NUL) were replaced. Sent as `raw_b64` (docs/protocol.md).
  std::optional<std::string> rawBytes;

  /// Sets `raw` (and `rawBytes` when needed) from the record as the array wrote it.
  void setRaw(std::string_view bytes, const TextEncoding& encoding = {}) {
    std::string storage;
    const std::string_view decoded = asUtf8(bytes, encoding, storage);
    if (decoded.data() == bytes.data()) {
      raw = std::string(bytes);
      rawBytes.reset();
      return;
    }
    raw = std::move(storage);
    // A code page's plain ASCII decodes to the same bytes.
    rawBytes = raw == bytes ? std::nullopt : std::optional<std::string>(bytes);
  }
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
  /// Records whose reading threw (a bug met by odd input): each a sentence naming the array and
  /// where the record is (file and line). The record itself still goes on as an event with its
  /// bytes (readRecord), and the array's state for this run is "error" with the first sentence.
  std::vector<std::string> recordFailures;
};

using LogFunction = std::function<void(std::string_view level, std::string_view message)>;

/// The identities an array proved on first contact (an SSH host key, a TLS public key), kept
/// in the agent's state so that a changed one is refused instead of trusted (trust on first
/// use). One store per array; names are the collector's own ("ssh", "wsapi", "rest").
class PinStore {
 public:
  virtual ~PinStore() = default;
  /// The pinned value, if the array was pinned under `name` before.
  virtual std::optional<std::string> find(std::string_view name) const = 0;
  /// Pins `value` under `name` durably (written before it returns).
  virtual Status remember(std::string_view name, std::string_view value) = 0;
};

/// Pins held in memory, for tests: the agent keeps them in files (FilePinStore), dry runs too.
class MemoryPinStore final : public PinStore {
 public:
  std::optional<std::string> find(std::string_view name) const override {
    auto it = pins_.find(name);
    if (it == pins_.end()) return std::nullopt;
    return it->second;
  }
  Status remember(std::string_view name, std::string_view value) override {
    pins_.insert_or_assign(std::string(name), std::string(value));
    return {};
  }

 private:
  std::map<std::string, std::string, std::less<>> pins_;
};

/// Everything a collector may touch.
struct CollectContext {
  std::function<std::uint64_t()> clock;  // ms since the epoch
  FileSystem* fs = nullptr;
  std::optional<std::string> cursor;  // what the last successful run left, if any
  PinStore* pins = nullptr;           // never null when the agent runs a collector
  LogFunction log;
};

/// "hitachi_svp 470849 (VSP-1)": the array as messages name it.
std::string arrayLabel(const ArrayConfig& array);

/// The boundary around one record (a SIM log line, an alert block): runs `read`, which adds
/// the record's events to `out`. If it throws, the failure becomes a sentence in
/// out.recordFailures naming the array, `where` (e.g. "file sim.log, the line at byte 4096")
/// and the exception, and `fallback(sentence)` adds the record as an event carrying its bytes,
/// so that it still reaches a person; the run goes on with the next record. No record can stop
/// the others.
void readRecord(Collection& out, const ArrayConfig& array, std::string_view where,
                const std::function<void()>& read,
                const std::function<void(const std::string& failure)>& fallback);

/// The error for a pinned identity that changed, shared by all collectors so that the
/// message always says how to accept a key that was replaced on purpose. Code
/// "collector.pin_mismatch" (status state "error").
Error pinMismatch(const ArrayConfig& array, std::string_view what, std::string_view pinned,
                  std::string_view seen);

/// A secret named by a `*-file` setting (e.g. password-file): the file's first line, without
/// its line end. "config" errors name the array's line, the setting and the file.
Result<std::string> readSecret(const ArrayConfig& array, std::string_view setting);
/// Appends readSecret's error to `problems` when `setting` is set and its file is not usable.
void checkSecret(const ArrayConfig& array, std::string_view setting, std::vector<Error>& problems);

/// A setting's value ("" when absent) and a path setting resolved against agent.xml's folder.
const std::string& setting(const ArrayConfig& array, std::string_view name);
std::filesystem::path settingPath(const ArrayConfig& array, std::string_view name);
/// A number setting within [min, max]; "config" errors name the array's line and the range.
Result<std::uint64_t> uintSetting(const ArrayConfig& array, std::string_view name,
                                  std::uint64_t min, std::uint64_t max);

/// The `encoding` attribute of the collectors that read text from an array, declared alike by
/// each (docs/configuration.md). Empty by default: UTF-8, or what the line profile names.
config::AttributeDecl encodingAttribute();
/// The array's `encoding` setting, or `fallback` when it is not set. "config" errors name the
/// array's line.
Result<TextEncoding> encodingSetting(const ArrayConfig& array, const TextEncoding& fallback = {});

/// The error for a cursor that does not parse: it names the file and how to start over.
Error damagedCursor(const ArrayConfig& array, const Error& why);

/// How the last collection of one array went; carried in every heartbeat.
struct ArrayStatus {
  std::string family;
  std::string serial;
  std::string name;
  /// "ok", or the error class: "unreachable", "login_failed", "bad_output", "timeout",
  /// "config", "pin_mismatch", "error".
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

  /// What a run needs from this machine beyond agent.xml: the secret files, folders and
  /// programs the array's settings name. `pass-agent check-config` asks, so that a missing
  /// password file is found when it is installed, not as the array's "config" status at the
  /// next run. One "config" error per problem, naming the array's line, the setting and the
  /// path; none when the array is ready.
  virtual std::vector<Error> checkPrerequisites() const { return {}; }

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
