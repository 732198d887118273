#include "pass/agent.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/envelope.hpp"
#include "pass/hpke.hpp"
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
constexpr std::string_view kPinDir = "pins";
// The home's HPKE public key as the home last announced it (docs/agent.md); without it the
// bundle's home-hpke.pub.
constexpr std::string_view kHomeKeyFile = "home-hpke.json";
// Domain separation of the key that seals the spool's copies from the signing key it is
// derived from.
constexpr std::string_view kCopyKeyLabel = "PASS spool copy key v1";
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
    s.clockError = j.value("clock_error", std::string{});
    if (j.contains("clock_skew_ms") && !j["clock_skew_ms"].is_null())
      s.clockSkewMs = j["clock_skew_ms"].get<std::int64_t>();
    s.storageError = j.value("storage_error", std::string{});
    if (j.contains("storage_error_ms") && !j["storage_error_ms"].is_null())
      s.storageErrorMs = j["storage_error_ms"].get<std::uint64_t>();
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
  nlohmann::json j = {
      {"next_heartbeat_due_ms", s.nextHeartbeatDueMs},
      {"last_delivery_ms", optionalMs(s.lastDeliveryMs)},
      {"last_run_ms", optionalMs(s.lastRunMs)},
      {"last_error", s.lastError},
      {"dropped_heartbeats", s.droppedHeartbeats},
      {"refused_envelopes", s.refusedEnvelopes},
      {"clock_error", s.clockError},
      {"clock_skew_ms", s.clockSkewMs ? nlohmann::json(*s.clockSkewMs) : nlohmann::json(nullptr)},
      {"storage_error", s.storageError},
      {"storage_error_ms", optionalMs(s.storageErrorMs)},
      {"arrays", nlohmann::json::array()}};
  for (const auto& a : s.arrays) j["arrays"].push_back(payload::arrayStatus(a));
  return platform::writeFileAtomic(file, j.dump(2) + "\n");
}

/// The key the home announced, as saved by saveHomeKey; none before the first announcement.
Result<std::optional<X25519Key>> loadHomeKey(const fs::path& file) {
  auto text = platform::readFile(file);
  if (!text) {
    if (text.error().code == "not_found") return std::optional<X25519Key>();
    return std::unexpected(text.error());
  }
  auto corrupt = [&](std::string_view why) {
    return fail("state.corrupt",
                fmt::format("{}: {}; delete it to seal to the bundle's home-hpke.pub again (the "
                            "home announces its current key in its next answer)",
                            platform::displayPath(file), why));
  };
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("public") || !j["public"].is_string() ||
      !j.contains("key_id") || !j["key_id"].is_string()) {
    return corrupt("not a JSON object with \"key_id\" and \"public\"");
  }
  auto raw = fromHex(j["public"].get<std::string>());
  if (!raw || raw->size() != 32) return corrupt("\"public\" is not 64 hex digits");
  auto key = X25519Key::fromRawPublic(*raw);
  if (!key) return corrupt(key.error().message);
  if (toHex(hpkeKeyId(*key)) != j["key_id"].get<std::string>()) {
    return corrupt("\"key_id\" is not the id of \"public\"");
  }
  return std::optional<X25519Key>(std::move(*key));
}

Status saveHomeKey(const fs::path& file, const HomeKeyAnnouncement& key, std::uint64_t nowMs) {
  nlohmann::json j = {
      {"key_id", toHex(key.keyId)}, {"public", toHex(key.publicKey)}, {"learned_ms", nowMs}};
  return platform::writeFileAtomic(file, j.dump(2) + "\n");
}

TransportSettings transportSettings(const AgentConfig& cfg, const TlsIdentity& identity) {
  TransportSettings t;
  t.endpoints = cfg.endpoints;
  t.proxy = cfg.proxy;
  t.caFile = cfg.homeCa.string();
  t.certFile = identity.certFile.string();
  t.keyFile = identity.keyFile.string();
  t.connectTimeout = cfg.connectTimeout;
  t.totalTimeout = cfg.totalTimeout;
  return t;
}

std::string describeRefusal(const DeliveryResult& r) {
  return fmt::format("refused by {} with HTTP {} {}: {}", r.endpoint, r.httpStatus, r.errorCode,
                     r.detail);
}

/// "2 d 0 h 5 min", "3 min 20 s": a clock difference a person reads at a glance.
std::string describeDuration(std::uint64_t ms) {
  const auto s = ms / 1000;
  if (s >= 86'400)
    return fmt::format("{} d {} h {} min", s / 86'400, s % 86'400 / 3600, s % 3600 / 60);
  if (s >= 3600) return fmt::format("{} h {} min", s / 3600, s % 3600 / 60);
  return fmt::format("{} min {} s", s / 60, s % 60);
}

/// What a refusal about time says about this host's clock.
std::string describeClockRefusal(const DeliveryResult& r, std::optional<std::int64_t> skewMs) {
  // The home's Date header has whole seconds, and a run takes a while.
  constexpr std::int64_t kAgreeMs = 60'000;
  std::string clock;
  if (!skewMs) {
    clock = "the home did not say its time";
  } else if (*skewMs >= kAgreeMs || *skewMs <= -kAgreeMs) {
    clock = fmt::format("this host's clock is {} {} the home's",
                        describeDuration(static_cast<std::uint64_t>(std::abs(*skewMs))),
                        *skewMs > 0 ? "ahead of" : "behind");
  } else {
    clock =
        "this host's clock agrees with the home's now; the envelope was sealed too long ago "
        "or while the clock was wrong";
  }
  return fmt::format("the home refused an envelope as {} ({}): {}", r.errorCode, r.detail, clock);
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
  X25519Key copyKey;  // seals the spool's copies to the agent itself (derived from signKey)
  std::optional<std::uint64_t> firstSealedSeq;  // the first seq sealed in this run
  bool clockAgrees = false;                     // an envelope sealed in this run was accepted
  std::string homeKeyNote;                      // what learnHomeKey did in this run

  /// An answer that names a new home key: saved atomically, then sealed to from now on. A
  /// key that cannot be saved is not used (the old one still opens at the home for 31 days).
  void learnHomeKey(const DeliveryResult& answer) {
    if (!answer.homeKeyError.empty()) {
      homeKeyNote = answer.homeKeyError;
      return;
    }
    if (!answer.homeKey || answer.homeKey->keyId == hpkeKeyId(homeKey)) return;
    auto key = X25519Key::fromRawPublic(answer.homeKey->publicKey);
    if (!key) return;  // checked by classifyAnswer
    if (auto saved = saveHomeKey(cfg.stateDir / kHomeKeyFile, *answer.homeKey, clock()); !saved) {
      homeKeyNote = fmt::format("the home's new HPKE key {} could not be saved: {}",
                                toHex(answer.homeKey->keyId), saved.error().message);
      return;
    }
    homeKey = std::move(*key);
    homeKeyNote = fmt::format("the home's HPKE key is now {} ({}); sealing to it from now on",
                              toHex(answer.homeKey->keyId), answer.endpoint);
  }
  TlsIdentity identity{};  // what `transport` connects with

  fs::path cursorFile(const ArrayConfig& array) const {
    return cfg.stateDir / kCursorDir / (array.key() + ".json");
  }

  /// Runs every collector, a few at a time; each array's result stands alone.
  std::vector<ArrayRun> collectAll() {
    std::vector<ArrayRun> runs(collectors.size());
    std::atomic<std::size_t> next{0};
    auto worker = [&] {
      for (std::size_t i = next++; i < collectors.size(); i = next++) {
        // The per-array boundary, also around what collectOne does besides the collector.
        try {
          runs[i] = collectOne(*collectors[i]);
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

  ArrayRun collectOne(Collector& collector) {
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
    // A dry run records the keys it meets like a run: it is usually the array's first contact,
    // with someone watching, and a pin kept only in memory would trust anew in every dry run.
    auto pins = FilePinStore::open(pinFile(cfg.stateDir, run.array), clock);
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
      run.collected = true;
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

  Result<Bytes> seal(std::uint64_t n, std::string_view payloadJson, std::uint64_t createdMs,
                     const X25519Key& recipient) {
    EnvelopeHeader h;
    h.agentId = cfg.agentId;
    h.seq = n;
    h.createdMs = createdMs;
    h.keyId = hpkeKeyId(recipient);
    return sealEnvelope(h, payloadJson, recipient, signKey);
  }

  Result<Bytes> seal(std::uint64_t n, std::string_view payloadJson) {
    return seal(n, payloadJson, clock(), homeKey);
  }

  /// Seals a payload for the home and spools it; a report also with its copy, so that it can be
  /// sealed again if the home refuses it for this host's clock.
  Result<std::uint64_t> enqueue(EnvelopeKind kind, std::string_view payloadJson) {
    auto n = seq.next();
    if (!n) return std::unexpected(n.error());
    if (!firstSealedSeq) firstSealedSeq = *n;
    const auto createdMs = clock();
    auto env = seal(*n, payloadJson, createdMs, homeKey);
    if (!env) return std::unexpected(env.error());
    Bytes copy;
    if (kind == EnvelopeKind::kReport) {
      auto sealed = seal(*n, payloadJson, createdMs, copyKey);
      if (!sealed) return std::unexpected(sealed.error());
      copy = std::move(*sealed);
    }
    auto dropped = spool.push(*n, kind, *env, copy);
    if (!dropped) {
      if (dropped.error().code == "spool_full") ++state.refusedEnvelopes;
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
    info.heldForClock = spool.held().size();
    info.storageError = state.storageError;
    info.storageErrorMs = state.storageErrorMs;
    return info;
  }

  std::uint64_t heartbeatIntervalMs() const {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(cfg.heartbeatInterval).count());
  }

  /// Records what could not be stored: a spool full of alerts, or a write that failed.
  void notStored(const Error& e, RunSummary& summary) {
    if (e.code == "spool_full") {
      summary.spoolRefusal = e;
      return;
    }
    summary.storageError = e;
    state.storageError = e.message;
    state.storageErrorMs = clock();
  }

  /// Sends the spool oldest first until the home cannot be reached; an envelope leaves the
  /// spool only on accepted/duplicate (durable at home). Nothing here seals or reserves: a full
  /// disk does not stop it.
  Status flush(RunSummary& summary) {
    if (summary.stoppedBy) return {};  // not reachable in this run: the next run tries again
    const auto entries = spool.entries();
    for (const auto& entry : entries) {
      auto bytes = spool.read(entry);
      if (!bytes) return std::unexpected(bytes.error());
      auto answer = transport.post(*bytes);
      if (answer.delivery == Delivery::kRetry) {
        summary.stoppedBy = std::move(answer);
        return {};
      }
      if (isClockRefusal(answer)) {
        // Setting aside writes a reason file: on a full disk the envelope stays for next run.
        if (auto aside = setAside(entry, answer, summary); !aside)
          notStored(aside.error(), summary);
        continue;
      }
      if (answer.delivery == Delivery::kRefused) {
        if (auto q = spool.quarantine(entry.seq, describeRefusal(answer)); !q) {
          notStored(q.error(), summary);
          continue;
        }
        ++summary.quarantined;
        continue;
      }
      if (auto removed = spool.remove(entry.seq); !removed) return removed;
      learnHomeKey(answer);
      state.lastDeliveryMs = clock();
      if (firstSealedSeq && entry.seq >= *firstSealedSeq) clockAgrees = true;
      if (answer.delivery == Delivery::kAccepted) {
        ++summary.delivered;
      } else {
        ++summary.duplicates;
      }
    }
    return {};
  }

  /// Renews the TLS certificate once a third of its lifetime is left: a new key pair here, the
  /// request over the current channel, the answer installed atomically, and from then on the
  /// new pair. A failure is the summary's renewalError; the next run tries again.
  void renewIfDue(RunSummary& summary) {
    if (summary.stoppedBy || !renewalDue(identity, static_cast<std::int64_t>(clock()))) return;
    auto request = makeCertificateRequest(cfg.agentId);
    if (!request) {
      summary.renewalError = request.error();
      return;
    }
    auto answer = transport.requestCertificate(request->der);
    if (answer.delivery != Delivery::kAccepted) {
      summary.renewalError = Error{"renewal." + answer.errorCode,
                                   fmt::format("{} answered the certificate request with {}: {}",
                                               answer.endpoint, answer.errorCode, answer.detail)};
      return;
    }
    // classifyCertificateAnswer accepted it: a JSON object with "certificate" a string.
    const auto pem = nlohmann::json::parse(answer.body)["certificate"].get<std::string>();
    auto installed = installRenewedCertificate(cfg, *request, pem);
    if (!installed) {
      summary.renewalError = installed.error();
      return;
    }
    identity = std::move(*installed);
    summary.renewedCertificate = identity;
    // A new handle: no connection made with the old certificate is reused.
    auto renewed = Transport::create(transportSettings(cfg, identity));
    if (!renewed) {
      summary.renewalError = renewed.error();
      return;
    }
    transport = std::move(*renewed);
  }

  /// An envelope the home refused for this host's clock: its copy is held until the clocks
  /// agree. A heartbeat is dropped (the next one says more); a report spooled without a copy
  /// (by an older agent) can only go to quarantine.
  Status setAside(const SpoolEntry& entry, const DeliveryResult& answer, RunSummary& summary) {
    summary.clockRefusal = answer;
    if (answer.homeClockMs) {
      summary.clockSkewMs = static_cast<std::int64_t>(clock()) - *answer.homeClockMs;
    }
    state.clockError = describeClockRefusal(answer, summary.clockSkewMs);
    state.clockSkewMs = summary.clockSkewMs;
    if (entry.kind == EnvelopeKind::kHeartbeat) return spool.remove(entry.seq);
    auto held = spool.hold(entry.seq, describeRefusal(answer));
    if (held) {
      ++summary.held;
      return {};
    }
    if (held.error().code != "no_copy") return held;
    auto q =
        spool.quarantine(entry.seq, describeRefusal(answer) + "; it has no copy to seal again");
    if (q) ++summary.quarantined;
    return q;
  }

  /// A heartbeat is due on schedule, when its due time lies more than one interval ahead (set
  /// by a clock that was ahead), and, when the home answered in this run, as soon as the home
  /// should learn something: a refusal, a storage failure, or whether the clocks agree again
  /// (the heartbeat is the probe for what is held).
  bool heartbeatDue(const RunSummary& summary, std::uint64_t now) const {
    if (now >= state.nextHeartbeatDueMs) return true;
    if (state.nextHeartbeatDueMs - now > heartbeatIntervalMs()) return true;
    if (summary.stoppedBy) return false;
    return summary.quarantined > 0 || summary.held > 0 || !spool.held().empty() ||
           !state.storageError.empty();
  }

  void spoolHeartbeat(RunSummary& summary) {
    auto info = heartbeatInfo(clock());
    auto n = enqueue(EnvelopeKind::kHeartbeat, payload::heartbeat(info).dump());
    if (!n) {
      notStored(n.error(), summary);
      return;
    }
    summary.heartbeatSpooled = true;
    state.nextHeartbeatDueMs = info.nextDueMs;
    // The home learns of the storage failure from this heartbeat.
    if (!summary.storageError) {
      state.storageError.clear();
      state.storageErrorMs.reset();
    }
  }

  /// The payload of a held copy, with `sent_ms` set to now: it is being sent now.
  Result<std::string> openCopy(const HeldEntry& held) {
    auto bytes = platform::readFile(held.copy);
    if (!bytes) return std::unexpected(bytes.error());
    EnvelopeKeys keys;
    keys.agentKey = [this](const AgentId&) {
      return Ed25519Key::fromRawPublic(signKey.rawPublic());
    };
    keys.homeKey = [this](const KeyId&) { return X25519Key::fromRawPrivate(copyKey.rawPrivate()); };
    auto opened = openEnvelope(asBytes(*bytes), keys);
    if (!opened) {
      return fail(opened.error().code,
                  fmt::format("held copy {} does not open: {}", platform::displayPath(held.copy),
                              opened.error().message));
    }
    auto json = nlohmann::json::parse(opened->payload, nullptr, false);
    if (!json.is_object()) return std::move(opened->payload);
    json["sent_ms"] = clock();
    return json.dump();
  }

  /// Seals every held copy again with a new seq and this run's time and spools it; the home
  /// drops events it already has by their ids.
  void resealHeld(RunSummary& summary) {
    for (const auto& held : spool.held()) {
      auto payload = openCopy(held);
      if (!payload) {
        notStored(payload.error(), summary);
        continue;
      }
      auto n = enqueue(held.kind, *payload);
      if (!n) {
        notStored(n.error(), summary);
        return;
      }
      // A crash before the release seals it once more next run: a duplicate the home drops.
      if (auto released = spool.release(held); !released) {
        notStored(released.error(), summary);
        return;
      }
      ++summary.resealed;
    }
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
  auto learned = loadHomeKey(cfg.stateDir / kHomeKeyFile);
  if (!learned) return std::unexpected(learned.error());
  Result<X25519Key> homeKey = *learned ? Result<X25519Key>(std::move(**learned))
                                       : X25519Key::loadPem(cfg.homeHpke.string());
  if (!homeKey) return std::unexpected(homeKey.error());
  auto seq = SequenceCounter::open(cfg.stateDir / "seq");
  if (!seq) return std::unexpected(seq.error());
  auto spool = Spool::open(cfg.stateDir / "spool", cfg.spool);
  if (!spool) return std::unexpected(spool.error());
  // A renewal a kill interrupted; the renewed file itself is whole or absent.
  if (auto removed = platform::removeTempFiles(cfg.stateDir / kRenewedCertificateDir); !removed) {
    return std::unexpected(removed.error());
  }
  auto identity = loadTlsIdentity(cfg);
  auto transport = Transport::create(transportSettings(cfg, identity));
  if (!transport) return std::unexpected(transport.error());
  auto stateFile = cfg.stateDir / kStateFile;
  auto state = loadState(stateFile);
  if (!state) return std::unexpected(state.error());
  // Writes a kill interrupted; the spool and the counter remove their own.
  for (const auto& dir : {cfg.stateDir / kCursorDir, cfg.stateDir / kPinDir}) {
    if (auto removed = platform::removeTempFiles(dir); !removed) {
      return std::unexpected(removed.error());
    }
  }
  auto pem = signKey->privatePem();
  auto copyIkm = hmacSha256(asBytes(pem), {asBytes(kCopyKeyLabel)});
  secureZero(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(pem.data()), pem.size()));
  auto copyKey = hpke::deriveKeyPair(copyIkm);
  secureZero(copyIkm);

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
                                             {},
                                             std::move(copyKey),
                                             std::nullopt,
                                             false,
                                             {},
                                             std::move(identity)});
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

const TlsIdentity& Agent::tlsIdentity() const { return impl_->identity; }

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
  s.firstSealedSeq.reset();
  s.clockAgrees = false;

  summary.arrays = s.collectAll();
  s.state.arrays.clear();
  for (auto& run : summary.arrays) {
    if (run.collected) {
      Status committed;
      try {
        committed = s.commit(run);
      } catch (const std::exception& e) {
        // Nothing was lost: the cursor did not advance, so the events are collected again.
        run.status = s.failedRun(run.array, "storing its new events", e.what()).status;
      }
      if (!committed) {
        // The cursor stays put: these events are collected again next run, never lost.
        s.notStored(committed.error(), summary);
        run.status.state = committed.error().code == "spool_full" ? "spool_full" : "storage_error";
        run.status.message = committed.error().message;
      }
    }
    s.state.arrays.push_back(run.status);
  }

  if (auto flushed = s.flush(summary); !flushed) return std::unexpected(flushed.error());
  s.renewIfDue(summary);
  // Sealed after the flush, so that it counts what the flush quarantined or held.
  if (s.heartbeatDue(summary, s.clock())) {
    s.spoolHeartbeat(summary);
    if (auto flushed = s.flush(summary); !flushed) return std::unexpected(flushed.error());
  }
  if (s.clockAgrees) {
    summary.clockConfirmed = true;
    s.state.clockError.clear();
    s.state.clockSkewMs.reset();
    if (!s.spool.held().empty()) {
      s.resealHeld(summary);
      if (auto flushed = s.flush(summary); !flushed) return std::unexpected(flushed.error());
    }
  }
  summary.homeKeyNote = std::exchange(s.homeKeyNote, {});
  summary.stillHeld = s.spool.held().size();
  summary.remaining = s.spool.depth();
  s.state.lastError.clear();
  if (summary.storageError) {
    s.state.lastError = summary.storageError->message;
  } else if (summary.spoolRefusal) {
    s.state.lastError = summary.spoolRefusal->message;
  } else if (summary.stoppedBy) {
    s.state.lastError = fmt::format("{} ({}): {}", summary.stoppedBy->endpoint,
                                    summary.stoppedBy->errorCode, summary.stoppedBy->detail);
  }
  if (auto saved = saveState(s.stateFile, s.state); !saved) summary.storageError = saved.error();
  return summary;
}

std::vector<ArrayRun> Agent::collectOnly() { return impl_->collectAll(); }

Result<DeliveryResult> Agent::sendTest(const std::string& message) {
  auto& s = *impl_;
  auto n = s.seq.next();
  if (!n) return std::unexpected(n.error());
  auto env = s.seal(*n, payload::test(s.clock(), message).dump());
  if (!env) return std::unexpected(env.error());
  auto answer = s.transport.post(*env);
  if (answer.delivery == Delivery::kAccepted || answer.delivery == Delivery::kDuplicate) {
    s.learnHomeKey(answer);
    s.state.lastDeliveryMs = s.clock();
    if (auto saved = saveState(s.stateFile, s.state); !saved) {
      return std::unexpected(saved.error());
    }
  }
  return answer;
}

namespace {

// Counts the files in `dir` whose name ends in `extension` (a missing directory holds none).
// Status must not guess: an unreadable spool is an error, never "0 envelopes".
Status countEnvelopes(const fs::path& dir, std::uint64_t& count, std::uint64_t* bytes,
                      std::string_view extension = ".env") {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return {};
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (it->path().extension() != extension || !it->is_regular_file(ec)) continue;
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
  std::uint64_t copies = 0;  // their bytes are the spool's too
  if (auto s = countEnvelopes(spoolDir, copies, &r.spoolBytes, ".copy"); !s) {
    return std::unexpected(s.error());
  }
  if (auto s = countEnvelopes(spoolDir / "held", r.held, nullptr, ".copy"); !s) {
    return std::unexpected(s.error());
  }
  return r;
}

}  // namespace pass
