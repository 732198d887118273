// pass-home's agent and envelope commands: agents, messages, events, revoke.

#include "pass/home/admin.hpp"

#include <algorithm>
#include <array>
#include <chrono>

#include <fmt/format.h>

#include "pass/envelope.hpp"
#include "pass/home/log.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/state_store.hpp"
#include "pass/text.hpp"
#include "pass/vendor_codes.hpp"

namespace pass::home {
namespace {

using Json = nlohmann::ordered_json;

Json optionalJson(const std::optional<std::int64_t>& v) { return v ? Json(*v) : Json(nullptr); }

std::string optionalTime(const std::optional<std::int64_t>& ms) {
  return ms ? formatTimestamp(*ms) : std::string("-");
}

std::string dumpJson(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

Result<std::string> normalizeAgent(std::string_view agent) {
  auto id = parseUuid(agent);
  if (!id) {
    return fail("usage.agent", fmt::format("--agent '{}' is not a UUID like 0f8e2c1a-...: {}",
                                           agent, id.error().message));
  }
  return formatUuid(*id);
}

Result<Store> openStore(const std::filesystem::path& state) {
  return openStateStore(StatePaths(state));
}

}  // namespace

Json agentsJson(const std::vector<AgentSummary>& agents) {
  Json out = Json::array();
  for (const auto& a : agents) {
    out.push_back(Json{{"id", a.id},
                       {"customer", a.customer},
                       {"site", a.site},
                       {"name", a.name},
                       {"revoked", a.revokedMs.has_value()},
                       {"last_seq", optionalJson(a.lastSeq)},
                       {"last_heartbeat_ms", optionalJson(a.lastHeartbeatMs)},
                       {"next_heartbeat_due_ms", optionalJson(a.nextHeartbeatDueMs)},
                       {"heartbeat_due_home_ms", optionalJson(a.heartbeatDueHomeMs)},
                       {"clock_skew_ms", optionalJson(a.clockSkewMs)},
                       {"clock_warning", a.clockWarning},
                       {"envelopes", a.envelopes},
                       {"cert_expires_ms", optionalJson(a.certExpiresMs)},
                       {"cert_renewed_ms", optionalJson(a.certRenewedMs)}});
  }
  return out;
}

std::string agentsTable(const std::vector<AgentSummary>& agents) {
  constexpr std::string_view kRow =
      "{:<36}  {:<16}  {:<16}  {:<16}  {:<7}  {:>8}  {:<24}  {:<24}  {:>9}  {:<24}  {}\n";
  std::string out =
      fmt::format(fmt::runtime(kRow), "ID", "CUSTOMER", "SITE", "NAME", "REVOKED", "LAST_SEQ",
                  "LAST_HEARTBEAT", "NEXT_HEARTBEAT_DUE", "ENVELOPES", "CERT_EXPIRES", "WARNING");
  for (const auto& a : agents) {
    out += fmt::format(fmt::runtime(kRow), a.id, printable(a.customer), printable(a.site),
                       printable(a.name), a.revokedMs ? "yes" : "no",
                       a.lastSeq ? std::to_string(*a.lastSeq) : std::string("-"),
                       optionalTime(a.lastHeartbeatMs), optionalTime(a.nextHeartbeatDueMs),
                       a.envelopes, optionalTime(a.certExpiresMs), a.clockWarning);
  }
  return out;
}

Json messagesJson(const std::vector<StoredEnvelope>& messages) {
  Json out = Json::array();
  for (const auto& m : messages) {
    auto payload = Json::parse(m.payload, nullptr, false);
    // Stored payloads were validated on the way in; show anything else verbatim.
    if (payload.is_discarded()) payload = m.payload;
    out.push_back(Json{{"agent", m.agentId},
                       {"seq", m.seq},
                       {"type", m.type},
                       {"created_ms", m.createdMs},
                       {"received_ms", m.receivedMs},
                       {"payload", std::move(payload)}});
  }
  return out;
}

std::string messagesText(const std::vector<StoredEnvelope>& messages) {
  std::string out;
  for (const auto& m : messages) {
    out += fmt::format("{}  {:>8}  {:<9}  created {}  received {}  {}\n", m.agentId, m.seq,
                       printable(m.type), formatTimestamp(m.createdMs),
                       formatTimestamp(m.receivedMs), printable(m.payload));
  }
  return out;
}

Result<std::string> listAgents(const std::filesystem::path& state, bool json) {
  auto store = openStore(state);
  if (!store) return std::unexpected(store.error());
  auto agents = store->agents();
  if (!agents) return std::unexpected(agents.error());
  if (json) return dumpJson(agentsJson(*agents), 2) + "\n";
  return agentsTable(*agents);
}

Result<std::string> listMessages(const std::filesystem::path& state,
                                 const std::optional<std::string>& agent, bool json) {
  std::optional<std::string> id;
  if (agent) {
    auto normalized = normalizeAgent(*agent);
    if (!normalized) return std::unexpected(normalized.error());
    id = std::move(*normalized);
  }
  auto store = openStore(state);
  if (!store) return std::unexpected(store.error());
  auto messages = store->envelopes(id);
  if (!messages) return std::unexpected(messages.error());
  if (json) return dumpJson(messagesJson(*messages), 2) + "\n";
  return messagesText(*messages);
}

namespace {

/// The table entry for a stored event's code, if its family has a table that knows it.
const CodeEntry* decode(const EventRecord& e) {
  if (!e.family || !e.code) return nullptr;
  const CodeTable* table = builtinCodeTable(*e.family);
  return table ? table->find(*e.code) : nullptr;
}

}  // namespace

Json eventsJson(const std::vector<StoredEvent>& events) {
  auto opt = [](const auto& v) { return v ? Json(*v) : Json(nullptr); };
  Json out = Json::array();
  for (const auto& stored : events) {
    const EventRecord& e = stored.event;
    auto event = Json::parse(e.payload, nullptr, false);
    if (event.is_discarded()) event = e.payload;
    out.push_back(Json{{"agent", stored.agentId},
                       {"seq", stored.seq},
                       {"received_ms", stored.receivedMs},
                       {"family", opt(e.family)},
                       {"array", opt(e.array)},
                       {"id", opt(e.id)},
                       {"code", opt(e.code)},
                       {"severity", opt(e.severity)},
                       {"occurred_ms", opt(e.occurredMs)},
                       {"decoded", nullptr},
                       {"event", std::move(event)}});
    if (const CodeEntry* d = decode(e)) {
      out.back()["decoded"] =
          Json{{"code", d->code},         {"meaning", d->meaning}, {"component", d->component},
               {"severity", d->severity}, {"action", d->action},   {"source", d->source}};
    }
  }
  return out;
}

Result<std::string> listEvents(const std::filesystem::path& state,
                               const std::optional<std::string>& array, bool json) {
  auto store = openStore(state);
  if (!store) return std::unexpected(store.error());
  auto events = store->events(array);
  if (!events) return std::unexpected(events.error());
  if (json) return dumpJson(eventsJson(*events), 2) + "\n";
  constexpr std::string_view kRow = "{:<24}  {:<12}  {:<12}  {:<10}  {:<8}  {:<13}  {:<40}  {}\n";
  std::string out = fmt::format(fmt::runtime(kRow), "OCCURRED", "FAMILY", "ARRAY", "CODE", "KIND",
                                "SEVERITY", "MEANING (vendor-codes)", "TEXT (as the array said)");
  for (const auto& stored : *events) {
    const EventRecord& e = stored.event;
    auto event = Json::parse(e.payload, nullptr, false);
    std::string text = event.is_object() ? event.value("text", std::string()) : e.payload;
    std::string kind = event.is_object() ? event.value("kind", std::string("alert")) : "-";
    const CodeEntry* d = decode(e);
    std::string severity = e.severity.value_or("");
    if (severity.empty() && d != nullptr) severity = d->severity;
    out += fmt::format(fmt::runtime(kRow), optionalTime(e.occurredMs),
                       printable(e.family.value_or("-")), printable(e.array.value_or("-")),
                       printable(e.code.value_or("-")), printable(kind),
                       severity.empty() ? "-" : printable(severity), d ? d->meaning : "(undecoded)",
                       printable(text));
  }
  return out;
}

Status revokeAgent(const std::filesystem::path& state, std::string_view agent) {
  auto id = normalizeAgent(agent);
  if (!id) return std::unexpected(id.error());
  auto store = openStore(state);
  if (!store) return std::unexpected(store.error());
  auto nowMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  return store->revokeAgent(*id, nowMs);
}

int exitCodeFor(const Error& error) {
  static constexpr std::array<std::string_view, 8> kInputCodes = {
      "already_initialized", "not_initialized", "out_not_empty",       "unknown_agent",
      "agent_exists",        "usage",           "store.password_file", "store.url"};
  for (std::string_view prefix :
       {"usage", "config", "ticket.", "silence.", "onboard.", "migrate.", "join."}) {
    if (error.code.starts_with(prefix)) return 2;
  }
  if (std::find(kInputCodes.begin(), kInputCodes.end(), error.code) != kInputCodes.end()) return 2;
  return 1;
}

}  // namespace pass::home
