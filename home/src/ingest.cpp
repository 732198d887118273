#include "pass/home/ingest.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace pass::home {
namespace {

using Json = nlohmann::json;

constexpr std::array<std::string_view, 3> kPayloadTypes = {"heartbeat", "test", "report"};
constexpr auto kInt64Max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

// A string field of an event; numbers are kept as their JSON text (some arrays number their
// alert codes). Anything else is refused so that a confused agent is noticed.
std::expected<std::optional<std::string>, std::string> eventText(const Json& event,
                                                                 const char* key,
                                                                 std::size_t index) {
  auto it = event.find(key);
  if (it == event.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  return std::unexpected(fmt::format("events[{}].{} must be a string", index, key));
}

std::expected<std::optional<std::int64_t>, std::string> optionalMs(const Json& object,
                                                                   const char* key,
                                                                   std::string_view where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::nullopt;
  if (it->is_number_unsigned() && it->get<std::uint64_t>() <= kInt64Max)
    return static_cast<std::int64_t>(it->get<std::uint64_t>());
  return std::unexpected(
      fmt::format("{}{} must be milliseconds since 1970 (an unsigned integer)", where, key));
}

}  // namespace

std::expected<ParsedPayload, std::string> parsePayload(std::string_view json) {
  auto doc = Json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return std::unexpected("the payload is not valid JSON");
  if (!doc.is_object()) return std::unexpected("the payload is not a JSON object");
  auto schema = doc.find("schema");
  if (schema == doc.end() || !schema->is_number_integer() || schema->get<std::int64_t>() != 1)
    return std::unexpected("\"schema\" must be 1");
  auto type = doc.find("type");
  if (type == doc.end() || !type->is_string() ||
      std::find(kPayloadTypes.begin(), kPayloadTypes.end(), type->get<std::string_view>()) ==
          kPayloadTypes.end())
    return std::unexpected("\"type\" must be one of heartbeat, test, report");

  ParsedPayload out;
  out.type = type->get<std::string>();
  if (out.type == "heartbeat") {
    auto due = optionalMs(doc, "next_due_ms", "");
    if (!due) return std::unexpected(due.error());
    out.nextDueMs = *due;
  }
  if (out.type == "report") {
    auto events = doc.find("events");
    if (events == doc.end() || !events->is_array())
      return std::unexpected("a report needs an \"events\" array");
    out.events.reserve(events->size());
    for (std::size_t i = 0; i < events->size(); ++i) {
      const Json& e = (*events)[i];
      if (!e.is_object()) return std::unexpected(fmt::format("events[{}] is not an object", i));
      EventRecord r;
      for (auto [key, field] : {std::pair{"array", &r.array}, std::pair{"code", &r.code},
                                std::pair{"severity", &r.severity}}) {
        auto text = eventText(e, key, i);
        if (!text) return std::unexpected(text.error());
        *field = std::move(*text);
      }
      auto occurred = optionalMs(e, "occurred_ms", fmt::format("events[{}].", i));
      if (!occurred) return std::unexpected(occurred.error());
      r.occurredMs = *occurred;
      r.payload = e.dump(-1, ' ', false, Json::error_handler_t::replace);
      out.events.push_back(std::move(r));
    }
  }
  return out;
}

AgentDirectory::AgentDirectory(std::filesystem::path database) : database_(std::move(database)) {}
AgentDirectory::~AgentDirectory() = default;

Result<std::optional<AgentDirectory::Entry>> AgentDirectory::find(const std::string& agentId) {
  std::unique_ptr<Store> store;
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      store = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!store) {
    auto opened = Store::open(database_, Store::Mode::kOpenExisting);
    if (!opened) return std::unexpected(opened.error());
    store = std::make_unique<Store>(std::move(*opened));
  }
  auto auth = store->agentAuth(agentId);
  // A connection that failed is dropped rather than re-used.
  if (!auth) return std::unexpected(auth.error());

  std::lock_guard lock(mutex_);
  idle_.push_back(std::move(store));
  if (!*auth) return std::optional<Entry>();
  auto& row = **auth;
  auto cached = keys_.find(agentId);
  if (cached == keys_.end() || cached->second.raw != row.signKey) {
    // Parsing outside the lock would be nicer, but it happens once per agent.
    auto key = Ed25519Key::fromRawPublic(row.signKey);
    if (!key) {
      return fail("store", fmt::format("{}: agent {} has an unusable sign_key: {}",
                                       database_.string(), agentId, key.error().message));
    }
    cached = keys_.insert_or_assign(agentId, CachedKey{row.signKey, std::move(*key)}).first;
  }
  return Entry{cached->second.key, row.certSerial, row.revokedMs.has_value()};
}

Ingest::Ingest(AgentDirectory& agents, X25519Key homeKey, WindowOptions window)
    : agents_(agents),
      homeKey_(std::move(homeKey)),
      homeKeyId_(hpkeKeyId(homeKey_)),
      window_(window) {}

Ingest::Outcome Ingest::check(ByteView envelope, const PeerIdentity& peer, std::int64_t nowMs) {
  Outcome out;
  auto refuse = [&out](unsigned status, std::string code, std::string detail) -> Outcome& {
    out.result = Refusal{status, std::move(code), std::move(detail)};
    return out;
  };

  auto header = parseEnvelopeHeader(envelope);
  if (!header) return refuse(400, header.error().code, header.error().message);
  const std::string agentId = formatUuid(header->agentId);
  out.context = {agentId, header->seq};

  auto certAgent = parseUuid(peer.commonName);
  if (!certAgent || *certAgent != header->agentId) {
    return refuse(403, "agent_mismatch",
                  fmt::format("the client certificate belongs to agent '{}' but the envelope "
                              "names agent {}",
                              peer.commonName, agentId));
  }
  if (header->seq > kInt64Max) {
    return refuse(400, "bad_seq", fmt::format("seq {} is above 2^63-1", header->seq));
  }

  auto entry = agents_.find(agentId);
  if (!entry) {
    out.result = entry.error();
    return out;
  }
  if (!*entry) {
    return refuse(403, "unknown_agent",
                  fmt::format("agent {} is not enrolled at this home", agentId));
  }
  if ((*entry)->revoked) {
    return refuse(403, "revoked",
                  fmt::format("agent {} was revoked; enroll the array again", agentId));
  }
  if ((*entry)->certSerial != peer.serialHex) {
    return refuse(403, "certificate_mismatch",
                  fmt::format("the client certificate (serial {}) is not the one enrolled for "
                              "agent {}",
                              peer.serialHex, agentId));
  }

  EnvelopeKeys keys;
  keys.agentKey = [&entry](const AgentId&) -> Result<Ed25519Key> { return (*entry)->signKey; };
  keys.homeKey = [this](const KeyId& id) -> Result<X25519Key> {
    if (id != homeKeyId_) {
      return fail("unknown_key_id",
                  fmt::format("the envelope is sealed to HPKE key id {}, this home's is {}",
                              toHex(id), toHex(homeKeyId_)));
    }
    return homeKey_;
  };
  auto opened = openEnvelope(envelope, keys);
  if (!opened) {
    // Framing, unknown_key_id and decrypt_failed are the sender's fault (400); a bad
    // signature is an identity problem (403).
    const auto& e = opened.error();
    return refuse(e.code == "bad_signature" ? 403 : 400, e.code, e.message);
  }

  auto created = static_cast<std::int64_t>(std::min(header->createdMs, kInt64Max));
  if (nowMs - created > window_.maxAgeMs) {
    return refuse(422, "stale",
                  fmt::format("created_ms {} is {} days before the home's clock; the window is "
                              "{} days",
                              created, (nowMs - created) / 86'400'000,
                              window_.maxAgeMs / 86'400'000));
  }
  if (created - nowMs > window_.maxAheadMs) {
    return refuse(422, "future",
                  fmt::format("created_ms {} is {} s ahead of the home's clock; check the agent "
                              "host's clock",
                              created, (created - nowMs) / 1000));
  }

  auto payload = parsePayload(opened->payload);
  if (!payload) return refuse(422, "bad_payload", payload.error());

  Checked checked;
  if (created - nowMs > window_.warnSkewMs) checked.aheadMs = created - nowMs;
  auto& r = checked.record;
  r.agentId = agentId;
  r.seq = header->seq;
  r.createdMs = created;
  r.receivedMs = nowMs;
  r.type = std::move(payload->type);
  r.size = envelope.size();
  r.payload = std::move(opened->payload);
  r.nextDueMs = payload->nextDueMs;
  r.events = std::move(payload->events);
  out.result = std::move(checked);
  return out;
}

}  // namespace pass::home
