#pragma once
/// The operator commands besides init, enroll and serve: listing agents and stored messages,
/// revoking an agent. Each returns the text to print, so main.cpp stays a parser.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pass/home/store.hpp"
#include "pass/result.hpp"

namespace pass::home {

/// Array of {id, customer, site, name, revoked, last_seq, last_heartbeat_ms,
/// next_heartbeat_due_ms, envelopes}; absent values are null.
nlohmann::ordered_json agentsJson(const std::vector<AgentSummary>& agents);
/// A fixed-width table with one agent per line; times in UTC ISO 8601.
std::string agentsTable(const std::vector<AgentSummary>& agents);

/// Array of {agent, seq, type, created_ms, received_ms, payload (the JSON object)}.
nlohmann::ordered_json messagesJson(const std::vector<StoredEnvelope>& messages);
/// One line per message: agent, seq, type, created, received, payload.
std::string messagesText(const std::vector<StoredEnvelope>& messages);

/// `pass-home agents`: the listing as text or JSON.
Result<std::string> listAgents(const std::filesystem::path& state, bool json);
/// `pass-home messages`: stored envelopes in (agent, seq) order.
Result<std::string> listMessages(const std::filesystem::path& state,
                                 const std::optional<std::string>& agent, bool json);
/// Array of {agent, seq, received_ms, family, array, id, code, severity, occurred_ms, event
/// (the JSON object the agent sent)}.
nlohmann::ordered_json eventsJson(const std::vector<StoredEvent>& events);
/// `pass-home events`: stored events in arrival order, optionally of one array.
Result<std::string> listEvents(const std::filesystem::path& state,
                               const std::optional<std::string>& array, bool json);
/// `pass-home revoke`: the agent is refused (403 revoked) from its next request on.
/// Fails with "usage.agent" for a malformed UUID and "unknown_agent".
Status revokeAgent(const std::filesystem::path& state, std::string_view agent);

/// The documented exit code for an error: 2 for usage and bad input, 1 for runtime failures.
int exitCodeFor(const Error& error);

}  // namespace pass::home
