#include "pass/agent.hpp"

#include <chrono>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/envelope.hpp"
#include "pass/payload.hpp"
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
                      {"refused_envelopes", s.refusedEnvelopes}};
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

  auto impl = std::unique_ptr<Impl>(new Impl{
      cfg, std::move(clock), std::move(*lock), std::move(*signKey), std::move(*homeKey),
      std::move(*seq), std::move(*spool), std::move(*transport), std::move(*state), stateFile});
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
  const auto now = s.clock();
  s.state.lastRunMs = now;

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
