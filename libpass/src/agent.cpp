#include "pass/agent.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/envelope.hpp"
#include "pass/payload.hpp"
#include "pass/pin_store.hpp"
#include "pass/text.hpp"
#include "platform/fs.hpp"
#include "platform/lock.hpp"

namespace pass {

namespace fs = std::filesystem;

std::uint64_t systemNowMs() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

namespace {

constexpr std::string_view kStateFile = "agent-state.json";
constexpr std::string_view kCursorDir = "cursors";
// Arrays are collected this many at a time: most of a collection is waiting on an array.
constexpr std::size_t kCollectThreads = 8;

nlohmann::json optionalMs(const std::optional<std::uint64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

Result<AgentState> loadState(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return AgentState{};
  auto text = platform::readFile(file);
  if (!text) return std::unexpected(text.error());
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return fail("state.corrupt", fmt::format("{} is not a JSON object; move it aside to reset the "
                                             "agent's run state",
                                             file.string()));
  }
  AgentState s;
  try {
    s.nextHeartbeatDueMs = j.value("next_heartbeat_due_ms", std::uint64_t{0});
    if (j.contains("last_delivery_ms") && !j["last_delivery_ms"].is_null())
      s.lastDeliveryMs = j["last_delivery_ms"].get<std::uint64_t>();
    if (j.contains("last_run_ms") && !j["last_run_ms"].is_null())
      s.lastRunMs = j["last_run_ms"].get<std::uint64_t>();
    s.lastError = j.value("last_error", std::string{});
    s.droppedHeartbeats = j.value("dropped_heartbeats", std::uint64_t{0});
    s.refusedEnvelopes = j.value("refused_envelopes", std::uint64_t{0});
    for (const auto& a : j.value("arrays", nlohmann::json::array())) {
      ArrayStatus st;
      st.family = a.at("family").get<std::string>();
      st.serial = a.at("serial").get<std::string>();
      st.name = a.value("name", std::string{});
      st.state = a.at("state").get<std::string>();
      st.message = a.value("message", std::string{});
      st.lastRunMs = a.value("last_run_ms", std::uint64_t{0});
      if (a.contains("last_success_ms") && !a["last_success_ms"].is_null())
        st.lastSuccessMs = a["last_success_ms"].get<std::uint64_t>();
      st.durationMs = a.value("duration_ms", std::uint64_t{0});
      st.newEvents = a.value("new_events", std::uint64_t{0});
      s.arrays.push_back(std::move(st));
    }
  } catch (const nlohmann::json::exception& e) {
    return fail("state.corrupt", fmt::format("{}: {}", file.string(), e.what()));
  }
  return s;
}

Status saveState(const fs::path& file, const AgentState& s) {
  nlohmann::json j = {{"next_heartbeat_due_ms", s.nextHeartbeatDueMs},
                      {"last_delivery_ms", optionalMs(s.lastDeliveryMs)},
                      {"last_run_ms", optionalMs(s.lastRunMs)},
                      {"last_error", s.lastError},
                      {"dropped_heartbeats", s.droppedHeartbeats},
                      {"refused_envelopes", s.refusedEnvelopes},
                      {"arrays", nlohmann::json::array()}};
  for (const auto& a : s.arrays) j["arrays"].push_back(payload::arrayStatus(a));
  return platform::writeFileAtomic(file, j.dump(2) + "\n");
}

TransportSettings transportSettings(const AgentConfig& cfg) {
  TransportSettings t;
  t.endpoints = cfg.endpoints;
  t.proxy = cfg.proxy;
  t.caFile = cfg.homeCa.string();
  t.certFile = cfg.tlsCert.string();
  t.keyFile = cfg.tlsKey.string();
  t.connectTimeout = cfg.connectTimeout;
  t.totalTimeout = cfg.totalTimeout;
  return t;
}

std::string describeRefusal(const DeliveryResult& r) {
  return fmt::format("refused by {} with HTTP {} {}: {}", r.endpoint, r.httpStatus, r.errorCode,
                     r.detail);
}

}  // namespace

struct Agent::Impl {
  AgentConfig cfg;
  Clock clock;
  platform::FileLock lock;
  Ed25519Key signKey;
  X25519Key homeKey;
  SequenceCounter seq;
  Spool spool;
  Transport transport;
  AgentState state;
  fs::path stateFile;
  std::vector<std::unique_ptr<Collector>> collectors;
  std::vector<ArrayRun> unbuildable;  // arrays whose collector could not be created

  fs::path cursorFile(const ArrayConfig& array) const {
    return cfg.stateDir / kCursorDir / (array.key() + ".json");
  }

  /// Runs every collector, a few at a time; each array's result stands alone. A dry run
  /// learns no pins.
  std::vector<ArrayRun> collectAll(bool dryRun) {
    std::vector<ArrayRun> runs(collectors.size());
    std::atomic<std::size_t> next{0};
    auto worker = [&] {
      for (std::size_t i = next++; i < collectors.size(); i = next++) {
        // The per-array boundary, also around what collectOne does besides the collector.
        try {
          runs[i] = collectOne(*collectors[i], dryRun);
        } catch (const std::exception& e) {
          runs[i] = failedRun(collectors[i]->array(), "collecting", e.what());
        }
      }
    };
    std::vector<std::thread> threads;
    const std::size_t n = std::min(kCollectThreads, collectors.size());
    for (std::size_t t = 1; t < n; ++t) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
    for (auto& r : unbuildable) r.status.lastRunMs = clock();
    runs.insert(runs.end(), unbuildable.begin(), unbuildable.end());
    return runs;
  }

  /// An unexpected failure of one array's `step`: that array's "error" state, nothing more.
  ArrayRun failedRun(const ArrayConfig& array, std::string_view step, std::string_view what) {
    ArrayRun run;
    run.array = array;
    run.status = ArrayStatus{
        array.family,
        array.serial,
        array.name,
        "error",
        toUtf8(fmt::format("{}: unexpected failure while {}: {}", arrayLabel(array), step, what)),
        clock(),
        std::nullopt,
        0,
        0};
    return run;
  }

  ArrayRun collectOne(Collector& collector, bool dryRun) {
    ArrayRun run;
    run.array = collector.array();
    auto failed = [&](const Error& e) {
      run.status = ArrayStatus{run.array.family,
                               run.array.serial,
                               run.array.name,
                               "error",
                               e.message,
                               clock(),
                               std::nullopt,
                               0,
                               0};
      return run;
    };
    auto pins = FilePinStore::open(pinFile(cfg.stateDir, run.array), clock, dryRun);
    if (!pins) return failed(pins.error());
    CollectContext ctx;
    ctx.pins = &*pins;
    ctx.clock = clock;
    ctx.fs = &realFileSystem();
    ctx.log = [&run](std::string_view, std::string_view message) {
      run.notes.emplace_back(message);
    };
    // No cursor file: the array's first run.
    auto text = platform::readFile(cursorFile(run.array));
    if (text) {
      ctx.cursor = std::move(*text);
    } else if (text.error().code != "not_found") {
      return failed(text.error());
    }
    auto outcome = collector.collect(ctx);
    run.status = std::move(outcome.status);
    if (outcome.result) {
      run.events = std::move(outcome.result->events);
      for (auto& note : outcome.result->notes) run.notes.push_back(std::move(note));
      run.cursor = std::move(outcome.result->cursor);
    }
    return run;
  }

  /// Spools the events of one array, then advances its cursor: a crash in between repeats
  /// events (the home drops repeats by id), it never loses one.
  Status commit(ArrayRun& run) {
    // Split so that no envelope nears the home's body limit (1 MiB by default), even when a
    // collector reads a long history.
    for (const auto& report : payload::reports(clock(), run.array, run.events)) {
      auto n = enqueue(EnvelopeKind::kReport, report);
      if (!n) return std::unexpected(n.error());
    }
    if (!run.cursor) return {};
    std::error_code ec;
    fs::create_directories(cfg.stateDir / kCursorDir, ec);
    if (ec) {
      return fail("state.io", fmt::format("cannot create {}: {}",
                                          (cfg.stateDir / kCursorDir).string(), ec.message()));
    }
    return platform::writeFileAtomic(cursorFile(run.array), *run.cursor);
  }

  Result<Bytes> seal(std::uint64_t n, std::string_view payloadJson) {
    EnvelopeHeader h;
    h.agentId = cfg.agentId;
    h.seq = n;
    h.createdMs = clock();
    h.keyId = hpkeKeyId(homeKey);
    return sealEnvelope(h, payloadJson, homeKey, signKey);
  }

  Result<std::uint64_t> enqueue(EnvelopeKind kind, std::string_view payloadJson) {
    auto n = seq.next();
    if (!n) return std::unexpected(n.error());
    auto env = seal(*n, payloadJson);
    if (!env) return std::unexpected(env.error());
    auto dropped = spool.push(*n, kind, *env);
    if (!dropped) {
      ++state.refusedEnvelopes;
      return std::unexpected(dropped.error());
    }
    state.droppedHeartbeats += dropped->size();
    return *n;
  }

  payload::HeartbeatInfo heartbeatInfo(std::uint64_t now) const {
    payload::HeartbeatInfo info;
    info.sentMs = now;
    info.intervalSeconds = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(cfg.heartbeatInterval).count());
    info.nextDueMs = now + info.intervalSeconds * 1000;
    info.spool.depth = spool.depth();
    info.spool.bytes = spool.bytes();
    if (!spool.entries().empty()) info.spool.oldestSeq = spool.entries().front().seq;
    info.spool.limits = cfg.spool;
    info.quarantine = spool.quarantined();
    info.droppedHeartbeats = state.droppedHeartbeats;
    info.refusedEnvelopes = state.refusedEnvelopes;
    info.lastDeliveryMs = state.lastDeliveryMs;
    info.arrays = state.arrays;
    return info;
  }
};

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Agent::Agent(Agent&&) noexcept = default;
Agent& Agent::operator=(Agent&&) noexcept = default;
Agent::~Agent() = default;

Result<Agent> Agent::open(const AgentConfig& cfg, Clock clock) {
  std::error_code ec;
  fs::create_directories(cfg.stateDir, ec);
  if (ec) {
    return fail("state.io", fmt::format("cannot create state directory {}: {}",
                                        cfg.stateDir.string(), ec.message()));
  }
  auto lock = platform::FileLock::tryAcquire(cfg.stateDir / "run.lock");
  if (!lock) return std::unexpected(lock.error());
  auto signKey = Ed25519Key::loadPem(cfg.signKey.string());
  if (!signKey) return std::unexpected(signKey.error());
  if (!signKey->hasPrivate()) {
    return fail("crypto.key", fmt::format("{} holds no private key: agent-sign.key must be the "
                                          "agent's Ed25519 private key",
                                          cfg.signKey.string()));
  }
  auto homeKey = X25519Key::loadPem(cfg.homeHpke.string());
  if (!homeKey) return std::unexpected(homeKey.error());
  auto seq = SequenceCounter::open(cfg.stateDir / "seq");
  if (!seq) return std::unexpected(seq.error());
  auto spool = Spool::open(cfg.stateDir / "spool", cfg.spool);
  if (!spool) return std::unexpected(spool.error());
  auto transport = Transport::create(transportSettings(cfg));
  if (!transport) return std::unexpected(transport.error());
  auto stateFile = cfg.stateDir / kStateFile;
  auto state = loadState(stateFile);
  if (!state) return std::unexpected(state.error());

  auto impl = std::unique_ptr<Impl>(new Impl{cfg,
                                             std::move(clock),
                                             std::move(*lock),
                                             std::move(*signKey),
                                             std::move(*homeKey),
                                             std::move(*seq),
                                             std::move(*spool),
                                             std::move(*transport),
                                             std::move(*state),
                                             stateFile,
                                             {},
                                             {}});
  for (const ArrayConfig& array : cfg.arrays) {
    auto collector = createCollector(array);
    if (collector) {
      impl->collectors.push_back(std::move(*collector));
      continue;
    }
    // One array's bad settings must not silence the others; check-config reports it too.
    ArrayRun run;
    run.array = array;
    run.status = ArrayStatus{array.family,
                             array.serial,
                             array.name,
                             "config",
                             collector.error().message,
                             0,
                             std::nullopt,
                             0,
                             0};
    impl->unbuildable.push_back(std::move(run));
  }
  return Agent(std::move(impl));
}

const AgentState& Agent::state() const { return impl_->state; }

Result<std::uint64_t> Agent::enqueue(EnvelopeKind kind, const std::string& payloadJson) {
  auto n = impl_->enqueue(kind, payloadJson);
  if (auto saved = saveState(impl_->stateFile, impl_->state); !saved) {
    return std::unexpected(saved.error());
  }
  return n;
}

Result<RunSummary> Agent::run() {
  auto& s = *impl_;
  RunSummary summary;
  s.state.lastRunMs = s.clock();

  summary.arrays = s.collectAll(false);
  s.state.arrays.clear();
  for (auto& run : summary.arrays) {
    if (run.status.state == "ok") {
      Status committed;
      try {
        committed = s.commit(run);
      } catch (const std::exception& e) {
        // Nothing was lost: the cursor did not advance, so the events are collected again.
        run.status = s.failedRun(run.array, "storing its new events", e.what()).status;
      }
      if (!committed) {
        if (committed.error().code != "spool_full") return std::unexpected(committed.error());
        // The cursor stays put: these events are collected again next run, never lost.
        summary.spoolRefusal = committed.error();
        run.status.state = "spool_full";
        run.status.message = committed.error().message;
      }
    }
    s.state.arrays.push_back(run.status);
  }

  const auto now = s.clock();
  if (now >= s.state.nextHeartbeatDueMs) {
    auto info = s.heartbeatInfo(now);
    auto n = s.enqueue(EnvelopeKind::kHeartbeat, payload::heartbeat(info).dump());
    if (n) {
      summary.heartbeatSpooled = true;
      s.state.nextHeartbeatDueMs = info.nextDueMs;
    } else if (n.error().code == "spool_full") {
      summary.spoolRefusal = n.error();
    } else {
      return std::unexpected(n.error());
    }
  }

  // Oldest first; an envelope leaves the spool only on accepted/duplicate (durable at home).
  const auto entries = s.spool.entries();
  std::string lastError;
  for (const auto& entry : entries) {
    auto bytes = s.spool.read(entry);
    if (!bytes) return std::unexpected(bytes.error());
    auto answer = s.transport.post(*bytes);
    if (answer.delivery == Delivery::kRetry) {
      lastError = fmt::format("{} ({}): {}", answer.endpoint, answer.errorCode, answer.detail);
      summary.stoppedBy = std::move(answer);
      break;
    }
    if (answer.delivery == Delivery::kRefused) {
      auto q = s.spool.quarantine(entry.seq, describeRefusal(answer));
      if (!q) return std::unexpected(q.error());
      ++summary.quarantined;
      continue;
    }
    auto removed = s.spool.remove(entry.seq);
    if (!removed) return std::unexpected(removed.error());
    s.state.lastDeliveryMs = s.clock();
    if (answer.delivery == Delivery::kAccepted) {
      ++summary.delivered;
    } else {
      ++summary.duplicates;
    }
  }
  summary.remaining = s.spool.depth();
  s.state.lastError = summary.spoolRefusal ? summary.spoolRefusal->message : lastError;
  if (auto saved = saveState(s.stateFile, s.state); !saved) return std::unexpected(saved.error());
  return summary;
}

std::vector<ArrayRun> Agent::collectOnly() { return impl_->collectAll(true); }

Result<DeliveryResult> Agent::sendTest(const std::string& message) {
  auto& s = *impl_;
  auto n = s.seq.next();
  if (!n) return std::unexpected(n.error());
  auto env = s.seal(*n, payload::test(s.clock(), message).dump());
  if (!env) return std::unexpected(env.error());
  auto answer = s.transport.post(*env);
  if (answer.delivery == Delivery::kAccepted || answer.delivery == Delivery::kDuplicate) {
    s.state.lastDeliveryMs = s.clock();
    if (auto saved = saveState(s.stateFile, s.state); !saved) {
      return std::unexpected(saved.error());
    }
  }
  return answer;
}

namespace {

// Counts the *.env files in `dir` (a missing directory holds none). Status must not guess: an
// unreadable spool is an error, never "0 envelopes".
Status countEnvelopes(const fs::path& dir, std::uint64_t& count, std::uint64_t* bytes) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return {};
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (it->path().extension() != ".env" || !it->is_regular_file(ec)) continue;
    ++count;
    if (bytes) *bytes += it->file_size(ec);
    if (ec) break;
  }
  if (ec) {
    return fail("state.io", fmt::format("cannot read {}: {}", dir.string(), ec.message()));
  }
  return {};
}

}  // namespace

Result<std::vector<ForgottenPins>> forgetPins(const AgentConfig& cfg, std::string_view serial) {
  std::vector<ForgottenPins> forgotten;
  bool configured = false;
  std::optional<platform::FileLock> lock;
  for (const ArrayConfig& array : cfg.arrays) {
    if (array.serial != serial) continue;
    configured = true;
    const auto file = pinFile(cfg.stateDir, array);
    auto store = FilePinStore::open(file, systemNowMs);
    // A damaged pin file is exactly what one may want to forget.
    if (!store && store.error().code != "state.corrupt") return std::unexpected(store.error());
    std::error_code ec;
    if (!fs::exists(file, ec)) continue;
    if (!lock) {
      auto acquired = platform::FileLock::tryAcquire(cfg.stateDir / "run.lock");
      if (!acquired) return std::unexpected(acquired.error());
      lock.emplace(std::move(*acquired));
    }
    ForgottenPins entry{array, {}};
    if (store) {
      for (const auto& [name, pin] : store->pins()) entry.pins[name] = pin.value;
    }
    fs::remove(file, ec);
    if (ec) {
      return fail("state.io",
                  fmt::format("cannot delete {}: {}", platform::displayPath(file), ec.message()));
    }
    if (auto synced = platform::syncDirectory(file.parent_path()); !synced) {
      return std::unexpected(synced.error());
    }
    forgotten.push_back(std::move(entry));
  }
  if (!configured) {
    return fail("config.array",
                fmt::format("{} configures no array with serial {}", cfg.file.string(), serial));
  }
  return forgotten;
}

Result<StatusReport> readStatus(const AgentConfig& cfg) {
  StatusReport r;
  auto state = loadState(cfg.stateDir / kStateFile);
  if (!state) return std::unexpected(state.error());
  r.state = *state;
  const auto spoolDir = cfg.stateDir / "spool";
  if (auto s = countEnvelopes(spoolDir, r.spoolDepth, &r.spoolBytes); !s) {
    return std::unexpected(s.error());
  }
  if (auto s = countEnvelopes(spoolDir / "quarantine", r.quarantined, nullptr); !s) {
    return std::unexpected(s.error());
  }
  return r;
}

}  // namespace pass
