// The ticket rules (docs/tickets.md), over TicketStorage: no SQL here. Everything runs inside
// the caller's write transaction, so a ticket change, its audit rows and its outbox rows are
// durable together with the envelope or command that caused them — or not at all.

#include "tickets/ticket_engine.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/vendor_codes.hpp"

namespace pass::home {

namespace {

using Json = nlohmann::json;

constexpr std::int64_t kHourMs = 3600LL * 1000;

/// Whether a repeat of a live ticket's problem gets its own audit row: occurrences 2 to 9, then
/// each number with one significant digit (10, 20, …, 90, 100, 200, …). A flapping component
/// repeats without end; its log grows by nine rows per tenfold, while the ticket's count and
/// last_seen stay exact and the events table keeps every occurrence.
bool auditsOccurrence(std::int64_t n) {
  while (n >= 10 && n % 10 == 0) n /= 10;
  return n < 10;
}

/// The ticket's title, which is also every message's subject: the code, what it means, the
/// component. What it means is the code table's meaning where the vendor published one, else
/// what the array itself said (the table's note on an unpublished code stays in the body).
std::string eventTitle(const EventRecord& e, const CodeEntry* decoded) {
  std::string what =
      decoded && decoded->meaningPublished ? decoded->meaning : e.text.value_or(std::string());
  if (what.empty() && decoded) what = decoded->meaning;
  if (what.empty()) what = fmt::format("code {}", e.code.value_or("?"));
  std::string title = fmt::format("{} {}", e.code.value_or(""), what);
  if (e.component && !e.component->empty()) title += fmt::format(" ({})", *e.component);
  if (title.size() > 200) title.resize(200);
  return title;
}

/// What makes two alerts of one array the same problem. Hitachi DF codes name a component's
/// state ("fan.alarm", and "fan.normal" when it recovers), so there the component alone is the
/// problem; elsewhere the code and the component together (two failed disks are two tickets).
std::string problemOf(std::string_view family, std::string_view code, std::string_view component) {
  if (family == "hitachi_df" && !component.empty()) return fmt::format("component:{}", component);
  return fmt::format("event:{}|{}", code, component);
}

/// The dedup key of the problem an event of agent `a` is about.
std::string eventKey(const AgentInfo& a, const EventRecord& e) {
  const std::string family = e.family.value_or("");
  return dedupKey(a.customer, a.site, family, e.array.value_or(""),
                  problemOf(family, e.code.value_or(""), e.component.value_or("")));
}

/// The ticket an alert of agent `a` opens, as `decision` ruled.
TicketRow alertTicket(const EnvelopeRecord& r, const AgentInfo& a, const EventRecord& e,
                      const Decision& decision) {
  const std::string code = e.code.value_or("");
  const CodeTable* table = builtinCodeTable(e.family.value_or(""));
  const CodeEntry* decoded = table ? table->find(code) : nullptr;
  TicketRow t;
  t.kind = "alert";
  t.customer = a.customer;
  t.site = a.site;
  t.family = e.family.value_or("");
  t.array = e.array.value_or("");
  t.agentId = r.agentId;
  t.component = e.component.value_or("");
  t.problem = problemOf(t.family, code, t.component);
  t.title = eventTitle(e, decoded);
  t.code = code;
  t.severity = e.severity.value_or("");
  t.urgent = decision.urgent;
  t.count = 1;
  t.firstSeenMs = e.occurredMs.value_or(r.receivedMs);
  t.lastSeenMs = t.firstSeenMs;
  t.openedMs = r.receivedMs;
  Json detail = {{"meaning", decoded ? decoded->meaning : std::string()},
                 {"text", e.text.value_or("")},
                 {"model", r.arrayModel.value_or("")},
                 {"name", r.arrayName.value_or("")},
                 {"rule", decision.why}};
  t.detail = detail.dump();
  return t;
}

constexpr std::array<std::string_view, 4> kUnreachableStates = {"unreachable", "timeout",
                                                                "login_failed", "pin_mismatch"};

}  // namespace

std::string dedupKey(std::string_view customer, std::string_view site, std::string_view family,
                     std::string_view array, std::string_view problem) {
  // \x1f (unit separator) cannot occur in enrolled names or serials.
  return fmt::format("{}\x1f{}\x1f{}\x1f{}\x1f{}", customer, site, family, array, problem);
}

TicketRow homeTicket(std::string kind, std::string customer, std::string site, std::string problem,
                     std::int64_t nowMs) {
  TicketRow t;
  t.kind = std::move(kind);
  t.customer = std::move(customer);
  t.site = std::move(site);
  t.problem = std::move(problem);
  t.urgent = false;
  t.count = 1;
  t.firstSeenMs = nowMs;
  t.lastSeenMs = nowMs;
  t.openedMs = nowMs;
  return t;
}

std::string humanDuration(std::int64_t ms) {
  std::int64_t minutes = ms / 60000;
  if (minutes < 120) return fmt::format("{} min", minutes);
  std::int64_t hours = minutes / 60;
  if (hours < 48) return fmt::format("{} h {} min", hours, minutes % 60);
  return fmt::format("{} d {} h", hours / 24, hours % 24);
}

// --- the rules of envelopes ------------------------------------------------------------------

Status TicketEngine::readAhead(std::span<const EnvelopeEvents> batch) {
  std::vector<std::string> agents;
  for (const auto& b : batch) agents.push_back(b.envelope->agentId);
  std::sort(agents.begin(), agents.end());
  agents.erase(std::unique(agents.begin(), agents.end()), agents.end());
  if (auto done = storage_.readAheadAgents(agents); !done) return done;
  std::vector<std::string> keys;
  for (const auto& b : batch) {
    if (b.events.empty()) continue;
    auto agent = storage_.agent(b.envelope->agentId);
    if (!agent) return std::unexpected(agent.error());
    if (!*agent) continue;
    for (const EventRecord* e : b.events) keys.push_back(eventKey(**agent, *e));
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  if (keys.empty()) return {};
  return storage_.readAheadLiveTickets(keys);
}

Status TicketEngine::onNewEvents(const EnvelopeRecord& r,
                                 std::span<const EventRecord* const> events) {
  auto agent = storage_.agent(r.agentId);
  if (!agent) return std::unexpected(agent.error());
  if (!*agent) return {};
  const AgentInfo& a = **agent;
  const std::int64_t now = r.receivedMs;
  for (const EventRecord* event : events) {
    const EventRecord& e = *event;
    const std::string family = e.family.value_or("");
    const std::string array = e.array.value_or("");
    const std::string code = e.code.value_or("");
    const std::int64_t seen = e.occurredMs.value_or(now);
    const std::string who = fmt::format("array {} (agent {})", array, a.name);

    if (e.kind == "recovery") {
      if (auto done = flushRepeats(); !done) return done;
      if (auto done = resolveLive(
              eventKey(a, e), who,
              fmt::format("the array reports recovery: {}", e.text.value_or(code)), now);
          !done) {
        return done;
      }
      continue;
    }
    Decision decision =
        decide(policy_.config(), a.customer, a.site, family, code, e.severity.value_or(""));
    if (decision.action != RuleAction::kTicket) continue;
    // The row (title, detail JSON) is built only when it is written: for a new ticket, and for
    // the last of a run of repeats, perhaps after this call (r and e outlive flush(); the
    // agent's row is copied).
    auto make = [&r, a, &e, decision = std::move(decision)] {
      return alertTicket(r, a, e, decision);
    };
    if (auto done = raiseCoalesced(eventKey(a, e), seen, std::move(make), who, now); !done) {
      return done;
    }
  }
  return {};
}

Status TicketEngine::onHeartbeat(const EnvelopeRecord& r) {
  if (auto done = flushRepeats(); !done) return done;
  auto agent = storage_.agent(r.agentId);
  if (!agent) return std::unexpected(agent.error());
  if (!*agent) return {};
  const auto& a = **agent;
  const std::int64_t now = r.receivedMs;
  const std::string who = fmt::format("agent {}", a.name);

  // The heartbeat is back: its missing-heartbeat ticket and the site's silence end.
  auto missing =
      storage_.liveTicket(dedupKey(a.customer, a.site, "", r.agentId, "missing_heartbeat"));
  if (!missing) return std::unexpected(missing.error());
  if (*missing) {
    // max: a ticket opened by `pass-home watchdog --now` in the future.
    auto down = std::max<std::int64_t>(0, now - (*missing)->openedMs);
    if (auto done =
            resolve(**missing, who,
                    fmt::format("heartbeats are back (ticket open {})", humanDuration(down)), now);
        !done) {
      return done;
    }
  }
  if (auto done = resolveLive(dedupKey(a.customer, a.site, "", "", "site_silent"), who,
                              fmt::format("agent {} is heard again", a.name), now);
      !done) {
    return done;
  }

  auto payload = Json::parse(r.payload, nullptr, false);
  if (!payload.is_object()) return {};

  // Clock: an agent ahead of the home is skewed for sure; one behind only when the heartbeat
  // went out at once (nothing waited in the spool before it), else the delay may be transit.
  const auto& cfg = policy_.config();
  std::int64_t skew = r.createdMs - r.receivedMs;
  std::int64_t depth = 0;
  if (payload.contains("spool") && payload["spool"].is_object()) {
    depth = payload["spool"].value("depth", std::int64_t{0});
  }
  std::string warning;
  if (skew > cfg.skewWarningMs) {
    warning = fmt::format("agent clock {} s ahead of the home's", skew / 1000);
  } else if (-skew > cfg.skewWarningMs && depth == 0) {
    warning = fmt::format("agent clock {} s behind the home's", -skew / 1000);
  }
  if (auto done = storage_.recordClockSkew(r.agentId, skew, warning); !done) return done;

  // Arrays the agent could not collect: one ticket per array while it lasts.
  static const Json kNoArrays = Json::array();
  const Json& listed =
      payload.contains("arrays") && payload["arrays"].is_array() ? payload["arrays"] : kNoArrays;
  if (auto done = checkExpectedArrays(a, r.agentId, listed, now); !done) return done;
  for (const auto& arr : listed) {
    if (!arr.is_object()) continue;
    std::string family = arr.value("family", std::string());
    std::string serial = arr.value("serial", std::string());
    std::string state = arr.value("state", std::string());
    if (serial.empty() || state.empty()) continue;
    std::string key = dedupKey(a.customer, a.site, family, serial, "collection");
    if (state == "ok") {
      if (auto done = resolveLive(key, who, "the agent collects from the array again", now);
          !done) {
        return done;
      }
      continue;
    }
    bool unreachable = std::find(kUnreachableStates.begin(), kUnreachableStates.end(), state) !=
                       kUnreachableStates.end();
    TicketRow t = homeTicket(unreachable ? "array_unreachable" : "collection_failed", a.customer,
                             a.site, "collection", now);
    t.family = family;
    t.array = serial;
    t.agentId = r.agentId;
    t.title = unreachable ? fmt::format("array {} unreachable ({})", serial, state)
                          : fmt::format("array {} not collected ({})", serial, state);
    t.code = state;
    t.detail = Json{{"text", arr.value("message", std::string())},
                    {"name", arr.value("name", std::string())}}
                   .dump();
    if (auto done = raise(std::move(t), who, now); !done) return done;
  }
  return {};
}

/// The arrays onboarding says the agent watches, against those its heartbeat lists: one
/// ticket per expected array the agent does not report (left out of its agent.xml, or a
/// different serial typed there), resolved by the first heartbeat that lists it.
Status TicketEngine::checkExpectedArrays(const AgentInfo& a, const std::string& agentId,
                                         const Json& listed, std::int64_t now) {
  auto expected = storage_.expectedArrays(agentId);
  if (!expected) return std::unexpected(expected.error());
  if (expected->empty()) return {};
  const std::string who = fmt::format("agent {}", a.name);
  // The first heartbeat of an onboarded agent ends its "never reported" ticket.
  if (auto done = resolveLive(dedupKey(a.customer, a.site, "", agentId, "never_reported"), who,
                              "the agent's first heartbeat arrived", now);
      !done) {
    return done;
  }
  for (const auto& e : *expected) {
    bool reported = std::any_of(listed.begin(), listed.end(), [&](const Json& arr) {
      return arr.is_object() && arr.value("family", std::string()) == e.family &&
             arr.value("serial", std::string()) == e.serial;
    });
    const std::string key = dedupKey(a.customer, a.site, e.family, e.serial, "not_reported");
    if (reported) {
      if (auto done = storage_.markArrayReported(agentId, e.family, e.serial, now); !done) {
        return done;
      }
      if (auto done = resolveLive(key, who, "the agent reports the array again", now); !done) {
        return done;
      }
      continue;
    }
    TicketRow t = homeTicket("array_not_reported", a.customer, a.site, "not_reported", now);
    t.family = e.family;
    t.array = e.serial;
    t.agentId = agentId;
    t.title = fmt::format("array {} is not watched by agent {}", e.serial, a.name);
    t.detail = Json{
        {"text", fmt::format("onboarding expects agent {} to watch {} {} (onboarded "
                             "{} ago), but its heartbeat does not list it: the "
                             "array is missing from its agent.xml",
                             a.name, e.family, e.serial, humanDuration(now - e.sinceMs))},
        {"model", e.model},
        {"name",
         e.name}}.dump();
    if (auto done = raise(std::move(t), who, now); !done) return done;
  }
  return {};
}

// --- a person's actions ----------------------------------------------------------------------

Result<TicketRow> TicketEngine::change(std::int64_t id, TicketAction action, std::string_view who,
                                       std::string_view note, std::int64_t nowMs) {
  if (auto done = flushRepeats(); !done) return std::unexpected(done.error());
  auto found = storage_.ticket(id);
  if (!found) return std::unexpected(found.error());
  if (!*found) return fail("ticket.unknown", fmt::format("no ticket #{}", id));
  const TicketRow t = **found;
  std::string detail = note.empty() ? std::string() : std::string(note);
  auto refuse = [&](std::string_view why) {
    return fail("ticket.state", fmt::format("ticket #{} is {}: {}", id, t.state, why));
  };
  switch (action) {
    case TicketAction::kAcknowledge: {
      if (t.state != "open") return refuse("only an open ticket can be acknowledged");
      if (auto done = storage_.markAcknowledged(id, who, nowMs); !done) {
        return std::unexpected(done.error());
      }
      if (auto done = storage_.appendLog(id, nowMs, who, "acknowledged", detail); !done) {
        return std::unexpected(done.error());
      }
      auto fresh = reread(id);
      if (!fresh) return fresh;
      if (auto done = notifyFollowUp(*fresh, "acknowledged", nowMs); !done) {
        return std::unexpected(done.error());
      }
      break;
    }
    case TicketAction::kResolve:
      if (t.state == "resolved") return refuse("it is resolved already");
      if (auto done = resolve(t, who, detail, nowMs); !done) return std::unexpected(done.error());
      break;
    case TicketAction::kReopen: {
      if (t.state != "resolved") return refuse("only a resolved ticket can be reopened");
      // The storage refuses this when a newer ticket of the same problem is live.
      auto reopened = reopen(id, t.customer, nowMs);
      if (!reopened) return std::unexpected(reopened.error());
      if (!*reopened) {
        return fail("ticket.state",
                    fmt::format("ticket #{} cannot be reopened: another ticket of the same "
                                "problem is open",
                                id));
      }
      if (auto done = storage_.appendLog(id, nowMs, who, "reopened", detail); !done) {
        return std::unexpected(done.error());
      }
      break;
    }
  }
  return reread(id);
}

// --- opening, counting, reopening, resolving ---------------------------------------------------

Status TicketEngine::raise(TicketRow t, std::string_view who, std::int64_t nowMs) {
  if (auto done = flushRepeats(); !done) return done;
  const std::string key = dedupKey(t.customer, t.site, t.family, t.array, t.problem);
  auto current = storage_.liveTicket(key);
  if (!current) return std::unexpected(current.error());
  if (*current) return repeatedOnce(**current, t, who, nowMs);
  return raiseNew(std::move(t), key, who, nowMs);
}

/// One more occurrence `t` of the live ticket `live`.
Status TicketEngine::repeatedOnce(const TicketRow& live, const TicketRow& t, std::string_view who,
                                  std::int64_t nowMs) {
  return repeated(live.id, live.count, 1, t.lastSeenMs, t.detail, who, nowMs);
}

/// raiseNew() when the storage found the problem's ticket live after all: another transaction,
/// perhaps another home's, opened or reopened it after this one looked (docs/scale-out.md).
/// `t` is one more occurrence of that ticket.
Status TicketEngine::raisedElsewhere(const TicketRow& t, const std::string& key,
                                     std::string_view who, std::int64_t nowMs) {
  auto live = storage_.liveTicket(key);
  if (!live) return std::unexpected(live.error());
  if (!*live) {
    return fail("ticket.race",
                fmt::format("the ticket of {} was opened and resolved again by another "
                            "transaction while this one opened it; run this one again",
                            key));
  }
  return repeatedOnce(**live, t, who, nowMs);
}

/// raise() for the alerts of the envelopes of one transaction, in order. Repeats of one live
/// ticket that follow each other (a storm of one SIM in one report, or in the reports of a
/// batch) are counted in memory and written as one update, with the same audit rows, when
/// another problem comes or flushRepeats() runs. Every other public entry runs flushRepeats()
/// before it touches tickets; the store calls flush() before it commits.
/// `key` is the dedup key of the row `make` builds; only a row that is written is built.
Status TicketEngine::raiseCoalesced(std::string key, std::int64_t seenMs,
                                    std::function<TicketRow()> make, std::string_view who,
                                    std::int64_t nowMs) {
  if (!pending_ || pending_->key != key) {
    if (auto done = flushRepeats(); !done) return done;
    auto current = storage_.liveTicket(key);
    if (!current) return std::unexpected(current.error());
    if (!*current) return raiseNew(make(), key, who, nowMs);
    pending_ = PendingRepeats{.key = std::move(key),
                              .ticket = (*current)->id,
                              .before = (*current)->count,
                              .n = 0,
                              .seenMs = seenMs,
                              .latest = {},
                              .audited = {}};
  }
  PendingRepeats& p = *pending_;
  ++p.n;
  p.seenMs = std::max(p.seenMs, seenMs);
  p.latest = std::move(make);
  // Each audited occurrence keeps who reported it and when, as if it had been written alone.
  if (auditsOccurrence(p.before + p.n)) {
    p.audited.push_back({p.before + p.n, std::string(who), nowMs});
  }
  return {};
}

Status TicketEngine::flushRepeats() {
  if (!pending_) return {};
  PendingRepeats p = std::move(*pending_);
  pending_.reset();
  if (auto done = storage_.countOccurrences(p.ticket, p.n, p.seenMs, p.latest().detail); !done) {
    return done;
  }
  for (const auto& a : p.audited) {
    if (auto done = storage_.appendLog(p.ticket, a.atMs, a.who, "repeated",
                                       fmt::format("occurrence {}", a.occurrence));
        !done) {
      return done;
    }
  }
  return {};
}

Status TicketEngine::flush() { return flushRepeats(); }

/// Counts `n` repeats of a live ticket that had `before` occurrences, with their audit rows.
Status TicketEngine::repeated(std::int64_t id, std::int64_t before, std::int64_t n,
                              std::int64_t seenMs, const std::string& detail, std::string_view who,
                              std::int64_t nowMs) {
  if (auto done = storage_.countOccurrences(id, n, seenMs, detail); !done) return done;
  for (std::int64_t occurrence = before + 1; occurrence <= before + n; ++occurrence) {
    if (!auditsOccurrence(occurrence)) continue;
    if (auto done = storage_.appendLog(id, nowMs, who, "repeated",
                                       fmt::format("occurrence {}", occurrence));
        !done) {
      return done;
    }
  }
  return {};
}

/// raise() for a problem with no live ticket: reopens a recently resolved one or opens one.
Status TicketEngine::raiseNew(TicketRow t, const std::string& key, std::string_view who,
                              std::int64_t nowMs) {
  auto resolved = storage_.resolvedSince(key, nowMs - policy_.config().reopenWindowMs);
  if (!resolved) return std::unexpected(resolved.error());
  if (*resolved) {
    const auto& r = **resolved;
    auto reopened = reopen(r.id, r.customer, nowMs);
    if (!reopened) return std::unexpected(reopened.error());
    if (!*reopened) return raisedElsewhere(t, key, who, nowMs);
    if (auto done = storage_.countOccurrences(r.id, 1, t.lastSeenMs, t.detail); !done) {
      return done;
    }
    if (auto done =
            storage_.appendLog(r.id, nowMs, who, "reopened",
                               fmt::format("came back {} after it was resolved",
                                           humanDuration(nowMs - r.resolvedMs.value_or(nowMs))));
        !done) {
      return done;
    }
    auto fresh = reread(r.id);
    if (!fresh) return std::unexpected(fresh.error());
    return notifyFirstLine(*fresh, "reopened", nowMs);
  }
  auto silence = storage_.silenceCovering(t, nowMs);
  if (!silence) return std::unexpected(silence.error());
  t.silencedBy = *silence;
  auto id = storage_.openTicket(t, key, escalateAt(t.customer, t.openedMs));
  if (!id) return std::unexpected(id.error());
  if (!*id) return raisedElsewhere(t, key, who, nowMs);
  t.id = **id;
  t.state = "open";
  if (auto done = storage_.appendLog(t.id, nowMs, who, "opened", t.title); !done) return done;
  if (t.silencedBy) {
    return storage_.appendLog(t.id, nowMs, "home", "silenced",
                              fmt::format("silence #{}: nobody is notified", *t.silencedBy));
  }
  if (t.parentId) return {};
  auto stormy = storm(t, nowMs);
  if (!stormy) return std::unexpected(stormy.error());
  if (*stormy) {
    return storage_.appendLog(t.id, nowMs, "home", "storm",
                              "storm mode at this site: in the summary, not sent on its own");
  }
  return notifyFirstLine(t, "opened", nowMs);
}

Status TicketEngine::resolveLive(const std::string& key, std::string_view who, std::string_view why,
                                 std::int64_t nowMs) {
  if (auto done = flushRepeats(); !done) return done;
  auto current = storage_.liveTicket(key);
  if (!current) return std::unexpected(current.error());
  if (!*current) return {};
  return resolve(**current, who, why, nowMs);
}

Status TicketEngine::resolve(const TicketRow& t, std::string_view who, std::string_view why,
                             std::int64_t nowMs) {
  if (auto done = flushRepeats(); !done) return done;
  if (auto done = storage_.markResolved(t.id, who, nowMs); !done) return done;
  if (auto done = storage_.appendLog(t.id, nowMs, who, "resolved", why); !done) return done;
  if (t.silencedBy || t.parentId) return {};
  auto fresh = reread(t.id);
  if (!fresh) return std::unexpected(fresh.error());
  return notifyFollowUp(*fresh, "resolved", nowMs);
}

Result<bool> TicketEngine::reopen(std::int64_t id, std::string_view customer, std::int64_t nowMs) {
  return storage_.markReopened(id, escalateAt(customer, nowMs));
}

Result<TicketRow> TicketEngine::reread(std::int64_t id) {
  auto fresh = storage_.ticket(id);
  if (!fresh) return std::unexpected(fresh.error());
  if (!*fresh) return fail("store", fmt::format("ticket #{} vanished inside its transaction", id));
  return std::move(**fresh);
}

std::optional<std::int64_t> TicketEngine::escalateAt(std::string_view customer,
                                                     std::int64_t fromMs) const {
  const Customer* c = policy_.config().customer(customer);
  if (c == nullptr || c->escalateAfterMs == 0) return std::nullopt;
  return fromMs + c->escalateAfterMs;
}

// --- who is told -----------------------------------------------------------------------------

notify::Notice TicketEngine::notice(const TicketRow& t, std::string_view kind,
                                    std::int64_t nowMs) const {
  notify::Notice n;
  n.ticket = t.id;
  n.kind = std::string(kind);
  n.customer = t.customer;
  n.site = t.site;
  n.family = t.family;
  n.serial = t.array;
  n.problem = t.title;
  n.code = t.code;
  n.severity = t.severity;
  n.component = t.component;
  n.count = t.count;
  n.firstSeenMs = t.firstSeenMs;
  n.lastSeenMs = t.lastSeenMs;
  n.ackUrl = t.state == "resolved" ? std::string() : policy_.ackUrl(t.id, nowMs);
  auto detail = Json::parse(t.detail, nullptr, false);
  if (detail.is_object()) {
    n.model = detail.value("model", std::string());
    n.arrayName = detail.value("name", std::string());
    n.meaning = detail.value("meaning", std::string());
    n.text = detail.value("text", std::string());
    n.detail = detail.value("note", std::string());
  }
  return n;
}

Status TicketEngine::enqueue(std::optional<std::int64_t> ticket, const notify::Notice& notice,
                             const std::vector<Recipient>& to, std::int64_t notBeforeMs,
                             std::int64_t nowMs) {
  const std::string body = noticeToJson(notice).dump();
  for (const auto& r : to) {
    auto recent = storage_.messagesSentTo(r.channel, r.target, nowMs - kHourMs);
    if (!recent) return std::unexpected(recent.error());
    bool limited = *recent >= policy_.config().ratePerHour;
    OutboxRow row;
    row.ticketId = ticket;
    row.createdMs = nowMs;
    row.channel = r.channel;
    row.target = r.target;
    row.recipient = r.name;
    row.notice = body;
    row.state = limited ? "suppressed" : "pending";
    row.notBeforeMs = notBeforeMs;
    if (limited) {
      row.lastError =
          fmt::format("rate limit: {} messages to {} in the last hour", *recent, r.target);
    }
    if (auto done = storage_.queueMessage(row); !done) return done;
    if (!limited) ++queued_;
    if (ticket && limited) {
      if (auto done = storage_.appendLog(*ticket, nowMs, "home", "rate_limited", row.lastError);
          !done) {
        return done;
      }
    }
  }
  return {};
}

/// Tells the first line (and management) about a ticket change, unless it is silenced or
/// belongs to a site ticket.
Status TicketEngine::notifyFirstLine(const TicketRow& t, std::string_view kind,
                                     std::int64_t nowMs) {
  if (t.silencedBy || t.parentId) return {};
  auto to = policy_.recipients(t.customer, t.urgent, 1, nowMs);
  if (to.empty()) return {};
  return enqueue(t.id, notice(t, kind, nowMs), to, policy_.notBefore(t.customer, t.urgent, nowMs),
                 nowMs);
}

/// Tells everyone who heard of the ticket before, on the channels that suit `kind`:
/// resolved by e-mail and webhook, acknowledged by webhook only (PagerDuty's state).
Status TicketEngine::notifyFollowUp(const TicketRow& t, std::string_view kind, std::int64_t nowMs) {
  auto heard = storage_.ticketRecipients(t.id);
  if (!heard) return std::unexpected(heard.error());
  std::vector<Recipient> to;
  for (auto& r : *heard) {
    bool wanted = r.channel == "webhook" || (kind == "resolved" && r.channel == "email");
    bool seen = std::any_of(to.begin(), to.end(), [&](const Recipient& x) {
      return x.channel == r.channel && x.target == r.target;
    });
    if (wanted && !seen) to.push_back(std::move(r));
  }
  if (to.empty()) return {};
  return enqueue(t.id, notice(t, kind, nowMs), to, nowMs, nowMs);
}

/// Storm mode at the ticket's site: true when this new ticket should not be notified on its
/// own. The first ticket past the threshold turns storm mode on and tells the first line.
Result<bool> TicketEngine::storm(const TicketRow& t, std::int64_t nowMs) {
  const auto& cfg = policy_.config();
  auto recent = storage_.ticketsOpenedSince(t.customer, t.site, nowMs - cfg.stormWindowMs);
  if (!recent) return std::unexpected(recent.error());
  auto active = storage_.stormActive(t.customer, t.site);
  if (!active) return std::unexpected(active.error());
  if (*active) {
    if (auto done = storage_.extendStorm(t.customer, t.site, nowMs); !done) {
      return std::unexpected(done.error());
    }
    return true;
  }
  if (*recent <= static_cast<std::int64_t>(cfg.stormThreshold)) return false;
  if (auto done = storage_.startStorm(t.customer, t.site, nowMs); !done) {
    return std::unexpected(done.error());
  }
  notify::Notice n;
  n.kind = "storm_on";
  n.customer = t.customer;
  n.site = t.site;
  n.problem = fmt::format("storm mode on at {}/{}", t.customer, t.site);
  n.count = *recent;
  n.detail = fmt::format(
      "{} new tickets at this site within {}. Until the tickets stop for {}, new tickets "
      "there are opened and recorded but not sent one by one; a summary follows.",
      *recent, humanDuration(cfg.stormWindowMs), humanDuration(cfg.stormWindowMs));
  auto to = policy_.recipients(t.customer, /*urgent=*/true, 1, nowMs);
  if (!to.empty()) {
    if (auto done = enqueue(std::nullopt, n, to, nowMs, nowMs); !done) {
      return std::unexpected(done.error());
    }
  }
  return true;
}

}  // namespace pass::home
