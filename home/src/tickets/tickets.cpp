// Tickets, their audit trail, the notification outbox, silences and the watchdog
// (docs/tickets.md). Everything here runs inside the caller's write transaction, so a ticket
// change, its audit rows and its outbox rows are durable together with the envelope or
// command that caused them — or not at all.

#include <algorithm>
#include <chrono>
#include <functional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/crypto.hpp"
#include "pass/home/log.hpp"
#include "pass/vendor_codes.hpp"
#include "platform/fs.hpp"
#include "store/store_impl.hpp"

namespace pass::home {

namespace {

using sqlite::Statement;
using sqlite::Transaction;
using Json = nlohmann::json;

constexpr std::int64_t kHourMs = 3600LL * 1000;

std::chrono::system_clock::time_point timePoint(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

std::int64_t toMs(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string dedupKey(std::string_view customer, std::string_view site, std::string_view family,
                     std::string_view array, std::string_view problem) {
  // \x1f (unit separator) cannot occur in enrolled names or serials.
  return fmt::format("{}\x1f{}\x1f{}\x1f{}\x1f{}", customer, site, family, array, problem);
}

std::string duration(std::int64_t ms) {
  std::int64_t minutes = ms / 60000;
  if (minutes < 120) return fmt::format("{} min", minutes);
  std::int64_t hours = minutes / 60;
  if (hours < 48) return fmt::format("{} h {} min", hours, minutes % 60);
  return fmt::format("{} d {} h", hours / 24, hours % 24);
}

TicketRow readTicket(const Statement& s) {
  TicketRow t;
  t.id = s.columnInt(0);
  t.kind = s.columnText(1);
  t.customer = s.columnText(2);
  t.site = s.columnText(3);
  t.family = s.columnText(4);
  t.array = s.columnText(5);
  t.agentId = s.columnText(6);
  t.problem = s.columnText(7);
  t.title = s.columnText(8);
  t.code = s.columnText(9);
  t.severity = s.columnText(10);
  t.component = s.columnText(11);
  t.urgent = s.columnInt(12) != 0;
  t.state = s.columnText(13);
  t.count = s.columnInt(14);
  t.firstSeenMs = s.columnInt(15);
  t.lastSeenMs = s.columnInt(16);
  t.openedMs = s.columnInt(17);
  t.ackedMs = s.columnOptInt(18);
  t.ackedBy = s.columnText(19);
  t.resolvedMs = s.columnOptInt(20);
  t.resolvedBy = s.columnText(21);
  t.escalationLevel = s.columnInt(22);
  t.parentId = s.columnOptInt(23);
  t.silencedBy = s.columnOptInt(24);
  t.detail = s.columnText(25);
  return t;
}

#define PASS_TICKET_COLUMNS                                                             \
  "id, kind, customer, site, family, array, agent_id, problem, title, code, severity, " \
  "component, urgent, state, count, first_seen_ms, last_seen_ms, opened_ms, acked_ms, " \
  "acked_by, resolved_ms, resolved_by, escalation_level, parent_id, silenced_by, detail "

/// What a ticket change needs to know about the agent that caused it.
struct AgentInfo {
  std::string customer;
  std::string site;
  std::string name;
};

}  // namespace

// --- Policy ----------------------------------------------------------------------------------

std::shared_ptr<const Policy> Policy::make(HomeConfig config, Bytes ackKey) {
  auto policy = std::make_shared<Policy>();
  policy->config_ = std::move(config);
  policy->ackKey_ = std::move(ackKey);
  return policy;
}

std::vector<Recipient> Policy::recipients(std::string_view customer, bool urgent, unsigned level,
                                          std::int64_t nowMs) const {
  std::vector<Recipient> out;
  const Customer* c = config_.customer(customer);
  if (c == nullptr) return out;
  bool sms = urgent || level > 1;
  auto add = [&](const std::string& name, std::string_view channel, const std::string& target) {
    if (target.empty()) return;
    if ((channel == "sms" || channel == "email_sms") && !sms) return;
    bool seen = std::any_of(out.begin(), out.end(), [&](const Recipient& r) {
      return r.channel == channel && r.target == target;
    });
    if (!seen) out.push_back(Recipient{name, std::string(channel), target});
  };
  auto addContact = [&](const Contact& k) {
    if (k.urgentOnly && !urgent) return;
    add(k.name, "email", k.email);
    add(k.name, "sms", k.sms);
    add(k.name, "email_sms", k.emailSms);
    add(k.name, "webhook", k.webhook);
  };
  if (c->schedule) {
    for (const auto& person : c->schedule->onCall(timePoint(nowMs), level)) {
      // A person on the rota who is also a contact is reached on every channel they gave.
      auto contact = std::find_if(c->contacts.begin(), c->contacts.end(), [&](const Contact& k) {
        return (!person.email.empty() && k.email == person.email) ||
               (!person.name.empty() && k.name == person.name);
      });
      if (contact != c->contacts.end()) {
        Contact merged = *contact;
        merged.urgentOnly = false;
        addContact(merged);
      } else {
        add(person.name, "email", person.email);
        add(person.name, "sms", person.phone);
      }
    }
  } else if (level == 1) {
    for (const auto& k : c->contacts) {
      if (k.role == "engineer") addContact(k);
    }
  }
  for (const auto& k : c->contacts) {
    if (k.role == "management") addContact(k);
  }
  return out;
}

std::int64_t Policy::notBefore(std::string_view customer, bool urgent, std::int64_t nowMs) const {
  if (urgent) return nowMs;
  const Customer* c = config_.customer(customer);
  if (c == nullptr || !c->quiet) return nowMs;
  return toMs(c->quiet->nextAllowed(timePoint(nowMs)));
}

unsigned Policy::levels(std::string_view customer) const {
  const Customer* c = config_.customer(customer);
  if (c == nullptr || !c->schedule) return 1;
  return c->schedule->levels();
}

namespace {

std::string ackMac(const Bytes& key, const std::string& text) {
  auto mac = hmacSha256(key, {asBytes(text)});
  return toHex(ByteView(mac.data(), 16));
}

}  // namespace

std::string Policy::ackToken(std::int64_t ticket, std::int64_t issuedS) const {
  return ackMac(ackKey_, fmt::format("pass-ack-v2:{}:{}", ticket, issuedS));
}

std::string Policy::legacyAckToken(std::int64_t ticket) const {
  return ackMac(ackKey_, fmt::format("pass-ack-v1:{}", ticket));
}

std::string Policy::ackUrl(std::int64_t ticket, std::int64_t issuedMs) const {
  if (config_.ackUrl.empty()) return {};
  std::string base = config_.ackUrl;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::int64_t issuedS = issuedMs / 1000;
  return fmt::format("{}/v1/ack/{}/{}/{}", base, ticket, issuedS, ackToken(ticket, issuedS));
}

Result<Bytes> loadAckKey(const std::filesystem::path& stateDir) {
  auto file = stateDir / "ack.key";
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) {
    auto text = platform::readFile(file);
    if (!text) return std::unexpected(text.error());
    auto key = fromHex(std::string_view(*text).substr(0, text->find('\n')));
    if (!key || key->size() != 32) {
      return fail("ack_key", fmt::format("{}: not 64 hex digits", file.string()));
    }
    return *key;
  }
  Bytes key = randomBytes(32);
  if (auto done = platform::writeFileAtomic(file, toHex(key) + "\n", /*privateFile=*/true); !done) {
    return std::unexpected(done.error());
  }
  return key;
}

Json noticeToJson(const notify::Notice& n) {
  return Json{{"ticket", n.ticket},
              {"kind", n.kind},
              {"customer", n.customer},
              {"site", n.site},
              {"family", n.family},
              {"model", n.model},
              {"serial", n.serial},
              {"array_name", n.arrayName},
              {"problem", n.problem},
              {"code", n.code},
              {"severity", n.severity},
              {"meaning", n.meaning},
              {"text", n.text},
              {"component", n.component},
              {"count", n.count},
              {"first_seen_ms", n.firstSeenMs},
              {"last_seen_ms", n.lastSeenMs},
              {"ack_url", n.ackUrl},
              {"detail", n.detail}};
}

notify::Notice noticeFromJson(const Json& j) {
  notify::Notice n;
  auto text = [&](const char* key) { return j.value(key, std::string()); };
  n.ticket = j.value("ticket", std::int64_t{0});
  n.kind = text("kind");
  n.customer = text("customer");
  n.site = text("site");
  n.family = text("family");
  n.model = text("model");
  n.serial = text("serial");
  n.arrayName = text("array_name");
  n.problem = text("problem");
  n.code = text("code");
  n.severity = text("severity");
  n.meaning = text("meaning");
  n.text = text("text");
  n.component = text("component");
  n.count = j.value("count", std::int64_t{1});
  n.firstSeenMs = j.value("first_seen_ms", std::int64_t{0});
  n.lastSeenMs = j.value("last_seen_ms", std::int64_t{0});
  n.ackUrl = text("ack_url");
  n.detail = text("detail");
  return n;
}

// --- the ticket book: statements on the Store's connection ------------------------------------

Result<Store::Impl::Statement*> Store::Impl::cached(const char* sql) {
  auto it = statements.find(sql);
  if (it == statements.end()) {
    auto prepared = db.prepare(sql);
    if (!prepared) return propagate(prepared);
    it = statements.emplace(sql, std::move(*prepared)).first;
  }
  return &it->second;
}

namespace {

/// Whether a repeat of a live ticket's problem gets its own audit row: occurrences 2 to 9, then
/// each number with one significant digit (10, 20, …, 90, 100, 200, …). A flapping component
/// repeats without end; its log grows by nine rows per tenfold, while the ticket's count and
/// last_seen stay exact and the events table keeps every occurrence.
bool auditsOccurrence(std::int64_t n) {
  while (n >= 10 && n % 10 == 0) n /= 10;
  return n < 10;
}

/// The ticket operations of one write transaction. Borrowed from Store::Impl for one call.
class Book {
 public:
  Book(Store::Impl& impl, const Policy& policy) : impl_(impl), policy_(policy) {}

  Result<std::optional<AgentInfo>> agent(const std::string& agentId) {
    auto s = impl_.cached("SELECT customer, site, name FROM agents WHERE id = ?1");
    if (!s) return propagate(s);
    auto& st = **s;
    st.bind(1, agentId);
    auto row = st.step();
    if (!row) {
      st.reset();
      return propagate(row);
    }
    std::optional<AgentInfo> out;
    if (*row) out = AgentInfo{st.columnText(0), st.columnText(1), st.columnText(2)};
    st.reset();
    return out;
  }

  Result<std::optional<TicketRow>> live(const std::string& key) {
    return one("SELECT " PASS_TICKET_COLUMNS
               "FROM tickets WHERE dedup_key = ?1 AND state <> 'resolved'",
               key, std::nullopt);
  }

  /// The newest ticket of `key` resolved at or after `sinceMs`.
  Result<std::optional<TicketRow>> recentlyResolved(const std::string& key, std::int64_t sinceMs) {
    return one("SELECT " PASS_TICKET_COLUMNS
               "FROM tickets WHERE dedup_key = ?1 AND state = 'resolved' AND resolved_ms >= ?2 "
               "ORDER BY resolved_ms DESC LIMIT 1",
               key, sinceMs);
  }

  Result<std::optional<TicketRow>> byId(std::int64_t id) {
    auto s = impl_.cached("SELECT " PASS_TICKET_COLUMNS "FROM tickets WHERE id = ?1");
    if (!s) return propagate(s);
    (*s)->bind(1, id);
    return fetchOne(**s);
  }

  Status log(std::int64_t ticket, std::int64_t atMs, std::string_view who, std::string_view action,
             std::string_view detail) {
    auto s = impl_.cached(
        "INSERT INTO ticket_log (ticket_id, at_ms, who, action, detail) "
        "VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!s) return propagate(s);
    (*s)->bind(1, ticket).bind(2, atMs).bind(3, who).bind(4, action).bind(5, detail);
    return (*s)->run();
  }

  /// Opens a new ticket; the unique index refuses a second live ticket of the same key.
  Result<TicketRow> open(TicketRow t, const std::string& key) {
    auto s = impl_.cached(
        "INSERT INTO tickets (dedup_key, kind, customer, site, family, array, agent_id, problem, "
        "title, code, severity, component, urgent, state, count, first_seen_ms, last_seen_ms, "
        "opened_ms, escalate_at_ms, parent_id, silenced_by, detail) VALUES (?1, ?2, ?3, ?4, ?5, "
        "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'open', ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)");
    if (!s) return propagate(s);
    auto& st = **s;
    st.bind(1, key).bind(2, t.kind).bind(3, t.customer).bind(4, t.site).bind(5, t.family);
    st.bind(6, t.array).bind(7, t.agentId).bind(8, t.problem).bind(9, t.title).bind(10, t.code);
    st.bind(11, t.severity).bind(12, t.component).bind(13, std::int64_t{t.urgent ? 1 : 0});
    st.bind(14, t.count).bind(15, t.firstSeenMs).bind(16, t.lastSeenMs).bind(17, t.openedMs);
    st.bind(18, escalateAt(t.customer, t.openedMs));
    st.bind(19, t.parentId).bind(20, t.silencedBy).bind(21, t.detail);
    if (auto done = st.run(); !done) return std::unexpected(done.error());
    auto id = impl_.db.queryInt("SELECT last_insert_rowid()");
    if (!id) return propagate(id);
    t.id = *id;
    t.state = "open";
    return t;
  }

  /// A repeat of a live ticket's problem: count and last seen.
  /// Adds `n` occurrences, the latest seen at `seenMs` with `detail`.
  Status repeat(std::int64_t id, std::int64_t n, std::int64_t seenMs, const std::string& detail) {
    auto s = impl_.cached(
        "UPDATE tickets SET count = count + ?4, last_seen_ms = max(last_seen_ms, ?2), "
        "detail = ?3 WHERE id = ?1");
    if (!s) return propagate(s);
    (*s)->bind(1, id).bind(2, seenMs).bind(3, detail).bind(4, n);
    return (*s)->run();
  }

  /// Counts `n` repeats of a live ticket that had `before` occurrences, with their audit rows.
  Status repeated(std::int64_t id, std::int64_t before, std::int64_t n, std::int64_t seenMs,
                  const std::string& detail, std::string_view who, std::int64_t nowMs) {
    if (auto done = repeat(id, n, seenMs, detail); !done) return done;
    for (std::int64_t occurrence = before + 1; occurrence <= before + n; ++occurrence) {
      if (!auditsOccurrence(occurrence)) continue;
      if (auto done = log(id, nowMs, who, "repeated", fmt::format("occurrence {}", occurrence));
          !done) {
        return done;
      }
    }
    return {};
  }

  Status setState(std::int64_t id, std::string_view state, std::string_view who,
                  std::int64_t nowMs) {
    const char* sql = nullptr;
    if (state == "acknowledged") {
      sql =
          "UPDATE tickets SET state = 'acknowledged', acked_ms = ?2, acked_by = ?3, "
          "escalate_at_ms = NULL WHERE id = ?1";
    } else if (state == "resolved") {
      sql =
          "UPDATE tickets SET state = 'resolved', resolved_ms = ?2, resolved_by = ?3, "
          "escalate_at_ms = NULL WHERE id = ?1";
    } else {
      sql =
          "UPDATE tickets SET state = 'open', acked_ms = NULL, acked_by = '', "
          "resolved_ms = NULL, resolved_by = '', escalation_level = 1, "
          "escalate_at_ms = ?4 WHERE id = ?1";
    }
    auto s = impl_.cached(sql);
    if (!s) return propagate(s);
    auto ticket = byId(id);
    if (!ticket) return std::unexpected(ticket.error());
    (*s)->bind(1, id).bind(2, nowMs).bind(3, who);
    if (state == "open") (*s)->bind(4, escalateAt((*ticket)->customer, nowMs));
    return (*s)->run();
  }

  /// The active silence that covers a ticket, if any.
  Result<std::optional<std::int64_t>> silencedBy(const TicketRow& t, std::int64_t nowMs) {
    auto s = impl_.cached(
        "SELECT id FROM silences WHERE removed_ms IS NULL AND starts_ms <= ?5 AND ends_ms > ?5 "
        "AND (customer = '' OR customer = ?1) AND (site = '' OR site = ?2) "
        "AND (array = '' OR array = ?3) AND (code = '' OR lower(code) = lower(?4)) "
        "ORDER BY id LIMIT 1");
    if (!s) return propagate(s);
    auto& st = **s;
    st.bind(1, t.customer).bind(2, t.site).bind(3, t.array).bind(4, t.code).bind(5, nowMs);
    auto row = st.step();
    std::optional<std::int64_t> out;
    if (row && *row) out = st.columnInt(0);
    st.reset();
    if (!row) return propagate(row);
    return out;
  }

  notify::Notice notice(const TicketRow& t, std::string_view kind, std::int64_t nowMs) const {
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

  /// Queues `notice` for each recipient, minding quiet hours and the per-recipient rate limit.
  Status enqueue(std::optional<std::int64_t> ticket, const notify::Notice& notice,
                 const std::vector<Recipient>& to, std::int64_t notBeforeMs, std::int64_t nowMs) {
    const std::string body = noticeToJson(notice).dump();
    for (const auto& r : to) {
      auto recent = countRecent(r, nowMs);
      if (!recent) return std::unexpected(recent.error());
      bool limited = *recent >= policy_.config().ratePerHour;
      auto s = impl_.cached(
          "INSERT INTO outbox (ticket_id, created_ms, channel, target, recipient, notice, state, "
          "not_before_ms, last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
      if (!s) return propagate(s);
      auto& st = **s;
      st.bind(1, ticket).bind(2, nowMs).bind(3, r.channel).bind(4, r.target).bind(5, r.name);
      st.bind(6, body).bind(7, std::string_view(limited ? "suppressed" : "pending"));
      st.bind(8, notBeforeMs);
      std::string why =
          limited ? fmt::format("rate limit: {} messages to {} in the last hour", *recent, r.target)
                  : std::string();
      st.bind(9, why);
      if (auto done = st.run(); !done) return done;
      if (!limited) ++impl_.enqueued;
      if (ticket && limited) {
        if (auto done = log(*ticket, nowMs, "home", "rate_limited", why); !done) return done;
      }
    }
    return {};
  }

  /// Tells the first line (and management) about a ticket change, unless it is silenced or
  /// belongs to a site ticket.
  Status notifyFirstLine(const TicketRow& t, std::string_view kind, std::int64_t nowMs) {
    if (t.silencedBy || t.parentId) return {};
    auto to = policy_.recipients(t.customer, t.urgent, 1, nowMs);
    if (to.empty()) return {};
    return enqueue(t.id, notice(t, kind, nowMs), to, policy_.notBefore(t.customer, t.urgent, nowMs),
                   nowMs);
  }

  /// Tells everyone who heard of the ticket before, on the channels that suit `kind`:
  /// resolved by e-mail and webhook, acknowledged by webhook only (PagerDuty's state).
  Status notifyFollowUp(const TicketRow& t, std::string_view kind, std::int64_t nowMs) {
    auto s = impl_.cached(
        "SELECT DISTINCT recipient, channel, target FROM outbox WHERE ticket_id = ?1 "
        "AND state <> 'suppressed' ORDER BY id");
    if (!s) return propagate(s);
    auto& st = **s;
    st.bind(1, t.id);
    std::vector<Recipient> to;
    while (true) {
      auto row = st.step();
      if (!row) {
        st.reset();
        return propagate(row);
      }
      if (!*row) break;
      Recipient r{st.columnText(0), st.columnText(1), st.columnText(2)};
      bool wanted = r.channel == "webhook" || (kind == "resolved" && r.channel == "email");
      bool seen = std::any_of(to.begin(), to.end(), [&](const Recipient& x) {
        return x.channel == r.channel && x.target == r.target;
      });
      if (wanted && !seen) to.push_back(std::move(r));
    }
    st.reset();
    if (to.empty()) return {};
    return enqueue(t.id, notice(t, kind, nowMs), to, nowMs, nowMs);
  }

  /// Storm mode at the ticket's site: true when this new ticket should not be notified on its
  /// own. The first ticket past the threshold turns storm mode on and tells the first line.
  Result<bool> storm(const TicketRow& t, std::int64_t nowMs) {
    const auto& cfg = policy_.config();
    auto s = impl_.cached(
        "SELECT count(*) FROM tickets WHERE customer = ?1 AND site = ?2 AND opened_ms > ?3 "
        "AND parent_id IS NULL");
    if (!s) return propagate(s);
    auto& st = **s;
    st.bind(1, t.customer).bind(2, t.site).bind(3, nowMs - cfg.stormWindowMs);
    auto row = st.step();
    std::int64_t recent = row && *row ? st.columnInt(0) : 0;
    st.reset();
    if (!row) return propagate(row);

    auto find = impl_.cached("SELECT tickets FROM storms WHERE customer = ?1 AND site = ?2");
    if (!find) return propagate(find);
    (*find)->bind(1, t.customer).bind(2, t.site);
    auto stormRow = (*find)->step();
    bool active = stormRow && *stormRow;
    (*find)->reset();
    if (!stormRow) return propagate(stormRow);
    if (active) {
      auto upd = impl_.cached(
          "UPDATE storms SET last_ms = ?3, tickets = tickets + 1 WHERE customer = ?1 AND "
          "site = ?2");
      if (!upd) return propagate(upd);
      (*upd)->bind(1, t.customer).bind(2, t.site).bind(3, nowMs);
      if (auto done = (*upd)->run(); !done) return std::unexpected(done.error());
      return true;
    }
    if (recent <= static_cast<std::int64_t>(cfg.stormThreshold)) return false;
    auto ins = impl_.cached(
        "INSERT INTO storms (customer, site, started_ms, last_ms, tickets) "
        "VALUES (?1, ?2, ?3, ?3, 1)");
    if (!ins) return propagate(ins);
    (*ins)->bind(1, t.customer).bind(2, t.site).bind(3, nowMs);
    if (auto done = (*ins)->run(); !done) return std::unexpected(done.error());
    notify::Notice n;
    n.kind = "storm_on";
    n.customer = t.customer;
    n.site = t.site;
    n.problem = fmt::format("storm mode on at {}/{}", t.customer, t.site);
    n.count = recent;
    n.detail = fmt::format(
        "{} new tickets at this site within {}. Until the tickets stop for {}, new tickets "
        "there are opened and recorded but not sent one by one; a summary follows.",
        recent, duration(cfg.stormWindowMs), duration(cfg.stormWindowMs));
    auto to = policy_.recipients(t.customer, /*urgent=*/true, 1, nowMs);
    if (!to.empty()) {
      if (auto done = enqueue(std::nullopt, n, to, nowMs, nowMs); !done) {
        return std::unexpected(done.error());
      }
    }
    return true;
  }

  /// raise() for the alerts of one envelope, in order. Repeats of one live ticket that follow
  /// each other (a storm of one SIM in one report) are counted in memory and written as one
  /// UPDATE, with the same audit rows, when another problem comes or flushRepeats() runs.
  /// The caller runs flushRepeats() before anything else touches tickets, and at the end.
  /// `key` is the dedup key of the row `make` builds; only a row that is written is built.
  Status raiseCoalesced(std::string key, std::int64_t seenMs, std::function<TicketRow()> make,
                        std::string_view who, std::int64_t nowMs) {
    if (pending_ && pending_->key == key) {
      ++pending_->n;
      pending_->seenMs = std::max(pending_->seenMs, seenMs);
      pending_->latest = std::move(make);
      return {};
    }
    if (auto done = flushRepeats(); !done) return done;
    auto current = live(key);
    if (!current) return std::unexpected(current.error());
    if (!*current) return raiseNew(make(), key, who, nowMs);
    pending_ = PendingRepeats{.key = std::move(key),
                              .ticket = (*current)->id,
                              .before = (*current)->count,
                              .n = 1,
                              .seenMs = seenMs,
                              .latest = std::move(make),
                              .who = std::string(who),
                              .nowMs = nowMs};
    return {};
  }

  Status flushRepeats() {
    if (!pending_) return {};
    PendingRepeats p = std::move(*pending_);
    pending_.reset();
    return repeated(p.ticket, p.before, p.n, p.seenMs, p.latest().detail, p.who, p.nowMs);
  }

  /// Opens, counts or reopens the ticket of a problem, with audit rows and notifications.
  Status raise(TicketRow t, std::string_view who, std::int64_t nowMs) {
    const std::string key = dedupKey(t.customer, t.site, t.family, t.array, t.problem);
    auto current = live(key);
    if (!current) return std::unexpected(current.error());
    if (*current) {
      const auto& c = **current;
      return repeated(c.id, c.count, 1, t.lastSeenMs, t.detail, who, nowMs);
    }
    return raiseNew(std::move(t), key, who, nowMs);
  }

  /// raise() for a problem with no live ticket: reopens a recently resolved one or opens one.
  Status raiseNew(TicketRow t, const std::string& key, std::string_view who, std::int64_t nowMs) {
    auto resolved = recentlyResolved(key, nowMs - policy_.config().reopenWindowMs);
    if (!resolved) return std::unexpected(resolved.error());
    if (*resolved) {
      auto r = **resolved;
      if (auto done = setState(r.id, "open", who, nowMs); !done) return done;
      if (auto done = repeat(r.id, 1, t.lastSeenMs, t.detail); !done) return done;
      if (auto done = log(r.id, nowMs, who, "reopened",
                          fmt::format("came back {} after it was resolved",
                                      duration(nowMs - r.resolvedMs.value_or(nowMs))));
          !done) {
        return done;
      }
      auto fresh = byId(r.id);
      if (!fresh) return std::unexpected(fresh.error());
      return notifyFirstLine(**fresh, "reopened", nowMs);
    }
    auto silence = silencedBy(t, nowMs);
    if (!silence) return std::unexpected(silence.error());
    t.silencedBy = *silence;
    auto opened = open(std::move(t), key);
    if (!opened) return std::unexpected(opened.error());
    if (auto done = log(opened->id, nowMs, who, "opened", opened->title); !done) return done;
    if (opened->silencedBy) {
      return log(opened->id, nowMs, "home", "silenced",
                 fmt::format("silence #{}: nobody is notified", *opened->silencedBy));
    }
    if (opened->parentId) return {};
    auto stormy = storm(*opened, nowMs);
    if (!stormy) return std::unexpected(stormy.error());
    if (*stormy) {
      return log(opened->id, nowMs, "home", "storm",
                 "storm mode at this site: in the summary, not sent on its own");
    }
    return notifyFirstLine(*opened, "opened", nowMs);
  }

  /// Resolves the live ticket of `key`, if there is one.
  Status resolveLive(const std::string& key, std::string_view who, std::string_view why,
                     std::int64_t nowMs) {
    auto current = live(key);
    if (!current) return std::unexpected(current.error());
    if (!*current) return {};
    return resolve(**current, who, why, nowMs);
  }

  Status resolve(const TicketRow& t, std::string_view who, std::string_view why,
                 std::int64_t nowMs) {
    if (auto done = setState(t.id, "resolved", who, nowMs); !done) return done;
    if (auto done = log(t.id, nowMs, who, "resolved", why); !done) return done;
    auto fresh = byId(t.id);
    if (!fresh) return std::unexpected(fresh.error());
    if (t.silencedBy || t.parentId) return {};
    return notifyFollowUp(**fresh, "resolved", nowMs);
  }

  std::optional<std::int64_t> escalateAt(std::string_view customer, std::int64_t fromMs) const {
    const Customer* c = policy_.config().customer(customer);
    if (c == nullptr || c->escalateAfterMs == 0) return std::nullopt;
    return fromMs + c->escalateAfterMs;
  }

  Store::Impl& impl() { return impl_; }

 private:
  Result<std::int64_t> countRecent(const Recipient& r, std::int64_t nowMs) {
    auto s = impl_.cached(
        "SELECT count(*) FROM outbox WHERE channel = ?1 AND target = ?2 AND created_ms > ?3 "
        "AND state <> 'suppressed'");
    if (!s) return propagate(s);
    auto& st = **s;
    st.bind(1, r.channel).bind(2, r.target).bind(3, nowMs - kHourMs);
    auto row = st.step();
    std::int64_t n = row && *row ? st.columnInt(0) : 0;
    st.reset();
    if (!row) return propagate(row);
    return n;
  }

  template <typename Arg>
  Result<std::optional<TicketRow>> one(const char* sql, const std::string& key, Arg second) {
    auto s = impl_.cached(sql);
    if (!s) return propagate(s);
    (*s)->bind(1, key);
    if constexpr (!std::is_same_v<Arg, std::nullopt_t>) (*s)->bind(2, second);
    return fetchOne(**s);
  }

  static Result<std::optional<TicketRow>> fetchOne(Statement& st) {
    auto row = st.step();
    if (!row) {
      st.reset();
      return propagate(row);
    }
    std::optional<TicketRow> out;
    if (*row) out = readTicket(st);
    st.reset();
    return out;
  }

  /// Repeats counted by raiseCoalesced() and not yet written.
  struct PendingRepeats {
    std::string key;
    std::int64_t ticket = 0;
    std::int64_t before = 0;  // the ticket's count before them
    std::int64_t n = 0;
    std::int64_t seenMs = 0;
    std::function<TicketRow()> latest;  // builds the row of the latest repeat, for its detail
    std::string who;
    std::int64_t nowMs = 0;
  };

  Store::Impl& impl_;
  const Policy& policy_;
  std::optional<PendingRepeats> pending_;
};

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

/// The arrays onboarding says the agent watches, against those its heartbeat lists: one
/// ticket per expected array the agent does not report (left out of its agent.xml, or a
/// different serial typed there), resolved by the first heartbeat that lists it.
Status checkExpectedArrays(Store::Impl& impl, Book& book, const AgentInfo& a,
                           const std::string& agentId, const Json& listed, std::int64_t now) {
  auto select = impl.cached(
      "SELECT family, serial, model, name, since_ms FROM expected_arrays WHERE agent_id = ?1");
  if (!select) return propagate(select);
  struct Expected {
    std::string family, serial, model, name;
    std::int64_t sinceMs;
  };
  std::vector<Expected> expected;
  (*select)->bind(1, agentId);
  while (true) {
    auto row = (*select)->step();
    if (!row) {
      (*select)->reset();
      return propagate(row);
    }
    if (!*row) break;
    auto& st = **select;
    expected.push_back(Expected{st.columnText(0), st.columnText(1), st.columnText(2),
                                st.columnText(3), st.columnInt(4)});
  }
  (*select)->reset();
  if (expected.empty()) return {};
  const std::string who = fmt::format("agent {}", a.name);
  // The first heartbeat of an onboarded agent ends its "never reported" ticket.
  if (auto done = book.resolveLive(dedupKey(a.customer, a.site, "", agentId, "never_reported"), who,
                                   "the agent's first heartbeat arrived", now);
      !done) {
    return done;
  }
  auto seen = impl.cached(
      "UPDATE expected_arrays SET last_reported_ms = ?4 WHERE agent_id = ?1 AND family = ?2 "
      "AND serial = ?3");
  if (!seen) return propagate(seen);
  for (const auto& e : expected) {
    bool reported = std::any_of(listed.begin(), listed.end(), [&](const Json& arr) {
      return arr.is_object() && arr.value("family", std::string()) == e.family &&
             arr.value("serial", std::string()) == e.serial;
    });
    const std::string key = dedupKey(a.customer, a.site, e.family, e.serial, "not_reported");
    if (reported) {
      (*seen)->bind(1, agentId).bind(2, e.family).bind(3, e.serial).bind(4, now);
      if (auto done = (*seen)->run(); !done) return done;
      (*seen)->reset();
      if (auto done = book.resolveLive(key, who, "the agent reports the array again", now); !done) {
        return done;
      }
      continue;
    }
    TicketRow t;
    t.kind = "array_not_reported";
    t.customer = a.customer;
    t.site = a.site;
    t.family = e.family;
    t.array = e.serial;
    t.agentId = agentId;
    t.problem = "not_reported";
    t.title = fmt::format("array {} is not watched by agent {}", e.serial, a.name);
    t.urgent = false;
    t.count = 1;
    t.firstSeenMs = now;
    t.lastSeenMs = now;
    t.openedMs = now;
    t.detail = Json{
        {"text", fmt::format("onboarding expects agent {} to watch {} {} (onboarded "
                             "{} ago), but its heartbeat does not list it: the "
                             "array is missing from its agent.xml",
                             a.name, e.family, e.serial, duration(now - e.sinceMs))},
        {"model", e.model},
        {"name",
         e.name}}.dump();
    if (auto done = book.raise(std::move(t), who, now); !done) return done;
  }
  return {};
}

}  // namespace

Status Store::Impl::onNewEvents(const EnvelopeRecord& r,
                                std::span<const EventRecord* const> events) {
  Book book(*this, *policy);
  auto agent = book.agent(r.agentId);
  if (!agent) return std::unexpected(agent.error());
  if (!*agent) return {};
  const AgentInfo& a = **agent;
  const std::int64_t now = r.receivedMs;
  for (const EventRecord* event : events) {
    const EventRecord& e = *event;
    const std::string family = e.family.value_or("");
    const std::string array = e.array.value_or("");
    const std::string code = e.code.value_or("");
    const std::string component = e.component.value_or("");
    const std::string problem = problemOf(family, code, component);
    const std::int64_t seen = e.occurredMs.value_or(now);
    const std::string who = fmt::format("array {} (agent {})", array, a.name);

    if (e.kind == "recovery") {
      if (auto done = book.flushRepeats(); !done) return done;
      if (auto done = book.resolveLive(
              dedupKey(a.customer, a.site, family, array, problem), who,
              fmt::format("the array reports recovery: {}", e.text.value_or(code)), now);
          !done) {
        return done;
      }
      continue;
    }
    Decision decision =
        decide(policy->config(), a.customer, a.site, family, code, e.severity.value_or(""));
    if (decision.action != RuleAction::kTicket) continue;
    // The row (title, detail JSON) is built only when it is written: for a new ticket, and for
    // the last of a run of repeats.
    auto make = [&r, &a, &e, decision = std::move(decision)] {
      return alertTicket(r, a, e, decision);
    };
    if (auto done = book.raiseCoalesced(dedupKey(a.customer, a.site, family, array, problem), seen,
                                        std::move(make), who, now);
        !done) {
      return done;
    }
  }
  return book.flushRepeats();
}

Status Store::Impl::onHeartbeat(const EnvelopeRecord& r) {
  Book book(*this, *policy);
  auto agent = book.agent(r.agentId);
  if (!agent) return std::unexpected(agent.error());
  if (!*agent) return {};
  const auto& a = **agent;
  const std::int64_t now = r.receivedMs;
  const std::string who = fmt::format("agent {}", a.name);

  // The heartbeat is back: its missing-heartbeat ticket and the site's silence end.
  auto missing = book.live(dedupKey(a.customer, a.site, "", r.agentId, "missing_heartbeat"));
  if (!missing) return std::unexpected(missing.error());
  if (*missing) {
    // max: a ticket opened by `pass-home watchdog --now` in the future.
    auto down = std::max<std::int64_t>(0, now - (*missing)->openedMs);
    if (auto done =
            book.resolve(**missing, who,
                         fmt::format("heartbeats are back (ticket open {})", duration(down)), now);
        !done) {
      return done;
    }
  }
  if (auto done = book.resolveLive(dedupKey(a.customer, a.site, "", "", "site_silent"), who,
                                   fmt::format("agent {} is heard again", a.name), now);
      !done) {
    return done;
  }

  auto payload = Json::parse(r.payload, nullptr, false);
  if (!payload.is_object()) return {};

  // Clock: an agent ahead of the home is skewed for sure; one behind only when the heartbeat
  // went out at once (nothing waited in the spool before it), else the delay may be transit.
  const auto& cfg = policy->config();
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
  auto upd = cached("UPDATE agents SET clock_skew_ms = ?2, clock_warning = ?3 WHERE id = ?1");
  if (!upd) return propagate(upd);
  (*upd)->bind(1, r.agentId).bind(2, skew).bind(3, warning);
  if (auto done = (*upd)->run(); !done) return done;

  // Arrays the agent could not collect: one ticket per array while it lasts.
  static const Json kNoArrays = Json::array();
  const Json& listed =
      payload.contains("arrays") && payload["arrays"].is_array() ? payload["arrays"] : kNoArrays;
  if (auto done = checkExpectedArrays(*this, book, a, r.agentId, listed, now); !done) return done;
  for (const auto& arr : listed) {
    if (!arr.is_object()) continue;
    std::string family = arr.value("family", std::string());
    std::string serial = arr.value("serial", std::string());
    std::string state = arr.value("state", std::string());
    if (serial.empty() || state.empty()) continue;
    std::string key = dedupKey(a.customer, a.site, family, serial, "collection");
    if (state == "ok") {
      if (auto done = book.resolveLive(key, who, "the agent collects from the array again", now);
          !done) {
        return done;
      }
      continue;
    }
    bool unreachable = std::find(kUnreachableStates.begin(), kUnreachableStates.end(), state) !=
                       kUnreachableStates.end();
    TicketRow t;
    t.kind = unreachable ? "array_unreachable" : "collection_failed";
    t.customer = a.customer;
    t.site = a.site;
    t.family = family;
    t.array = serial;
    t.agentId = r.agentId;
    t.problem = "collection";
    t.title = unreachable ? fmt::format("array {} unreachable ({})", serial, state)
                          : fmt::format("array {} not collected ({})", serial, state);
    t.code = state;
    t.urgent = false;
    t.count = 1;
    t.firstSeenMs = now;
    t.lastSeenMs = now;
    t.openedMs = now;
    t.detail = Json{{"text", arr.value("message", std::string())},
                    {"name", arr.value("name", std::string())}}
                   .dump();
    if (auto done = book.raise(std::move(t), who, now); !done) return done;
  }
  return {};
}

// --- Store: tickets --------------------------------------------------------------------------

void Store::setPolicy(std::shared_ptr<const Policy> policy) { impl_->policy = std::move(policy); }

std::int64_t Store::takeEnqueued() { return std::exchange(impl_->enqueued, 0); }

Result<std::vector<TicketRow>> Store::tickets(const TicketFilter& filter) {
  auto s = impl_->db.prepare(
      "SELECT " PASS_TICKET_COLUMNS
      "FROM tickets WHERE (?1 = 0 OR state <> 'resolved') AND (?2 IS NULL OR customer = ?2) "
      "AND (?3 IS NULL OR array = ?3) ORDER BY id");
  if (!s) return propagate(s);
  s->bind(1, std::int64_t{filter.liveOnly ? 1 : 0}).bind(2, filter.customer).bind(3, filter.array);
  std::vector<TicketRow> out;
  while (true) {
    auto row = s->step();
    if (!row) return propagate(row);
    if (!*row) break;
    out.push_back(readTicket(*s));
  }
  return out;
}

Result<std::optional<TicketRow>> Store::ticket(std::int64_t id) {
  auto s = impl_->db.prepare("SELECT " PASS_TICKET_COLUMNS "FROM tickets WHERE id = ?1");
  if (!s) return propagate(s);
  s->bind(1, id);
  auto row = s->step();
  if (!row) return propagate(row);
  if (!*row) return std::optional<TicketRow>();
  return std::optional<TicketRow>(readTicket(*s));
}

Result<std::vector<TicketLogRow>> Store::ticketLog(std::int64_t id) {
  auto s = impl_->db.prepare(
      "SELECT id, ticket_id, at_ms, who, action, detail FROM ticket_log WHERE ticket_id = ?1 "
      "ORDER BY id");
  if (!s) return propagate(s);
  s->bind(1, id);
  std::vector<TicketLogRow> out;
  while (true) {
    auto row = s->step();
    if (!row) return propagate(row);
    if (!*row) break;
    out.push_back(TicketLogRow{s->columnInt(0), s->columnInt(1), s->columnInt(2), s->columnText(3),
                               s->columnText(4), s->columnText(5)});
  }
  return out;
}

Result<std::vector<OutboxRow>> Store::outbox(std::optional<std::int64_t> ticketId) {
  return impl_->outboxQueue.rows(ticketId);
}

OutboxQueue& Store::outboxQueue() { return impl_->outboxQueue; }

Result<TicketRow> Store::changeTicket(std::int64_t id, TicketAction action, std::string_view who,
                                      std::string_view note, std::int64_t nowMs) {
  if (!impl_->policy) return fail("ticket.policy", "no policy: load home.xml first");
  auto tx = Transaction::beginImmediate(impl_->db);
  if (!tx) return propagate(tx);
  Book book(*impl_, *impl_->policy);
  auto found = book.byId(id);
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
      if (auto done = book.setState(id, "acknowledged", who, nowMs); !done) {
        return std::unexpected(done.error());
      }
      if (auto done = book.log(id, nowMs, who, "acknowledged", detail); !done) {
        return std::unexpected(done.error());
      }
      auto fresh = book.byId(id);
      if (!fresh) return std::unexpected(fresh.error());
      if (auto done = book.notifyFollowUp(**fresh, "acknowledged", nowMs); !done) {
        return std::unexpected(done.error());
      }
      break;
    }
    case TicketAction::kResolve:
      if (t.state == "resolved") return refuse("it is resolved already");
      if (auto done = book.resolve(t, who, detail, nowMs); !done) {
        return std::unexpected(done.error());
      }
      break;
    case TicketAction::kReopen: {
      if (t.state != "resolved") return refuse("only a resolved ticket can be reopened");
      // The unique index refuses this when a newer ticket of the same problem is live.
      if (auto done = book.setState(id, "open", who, nowMs); !done) {
        return fail("ticket.state",
                    fmt::format("ticket #{} cannot be reopened: another ticket of the same "
                                "problem is open ({})",
                                id, done.error().message));
      }
      if (auto done = book.log(id, nowMs, who, "reopened", detail); !done) {
        return std::unexpected(done.error());
      }
      break;
    }
  }
  auto fresh = book.byId(id);
  if (!fresh) return std::unexpected(fresh.error());
  if (auto done = tx->commit(); !done) return std::unexpected(done.error());
  return **fresh;
}

Result<WatchdogReport> Store::watchdog(std::int64_t nowMs,
                                       std::optional<std::int64_t> receivingSinceMs) {
  if (!impl_->policy) return fail("ticket.policy", "no policy: load home.xml first");
  const Policy& policy = *impl_->policy;
  const HomeConfig& cfg = policy.config();
  auto tx = Transaction::beginImmediate(impl_->db);
  if (!tx) return propagate(tx);
  Book book(*impl_, policy);
  WatchdogReport report;
  const auto grace = static_cast<std::int64_t>(cfg.graceHeartbeats);

  // 1. Agents whose heartbeat is overdue by more than the grace, without a live ticket. While
  // the home was not receiving, nobody could reach it: the grace counts from the later of the
  // due time and the moment it began receiving again.
  struct Silent {
    std::string id, customer, site, name;
    std::int64_t dueMs, intervalMs;
  };
  std::vector<Silent> silent;
  {
    auto s = impl_->db.prepare(
        "SELECT id, customer, site, name, heartbeat_due_home_ms, heartbeat_interval_ms, "
        "?1 > max(heartbeat_due_home_ms, ?3) + ?2 * heartbeat_interval_ms "
        "FROM agents WHERE revoked_ms IS NULL AND heartbeat_due_home_ms IS NOT NULL "
        "AND ?1 > heartbeat_due_home_ms + ?2 * heartbeat_interval_ms ORDER BY customer, site, id");
    if (!s) return propagate(s);
    s->bind(1, nowMs).bind(2, grace).bind(3, receivingSinceMs.value_or(0));
    while (true) {
      auto row = s->step();
      if (!row) return propagate(row);
      if (!*row) break;
      if (s->columnInt(6) == 0) {
        ++report.held;
        continue;
      }
      silent.push_back(Silent{s->columnText(0), s->columnText(1), s->columnText(2),
                              s->columnText(3), s->columnInt(4), s->columnInt(5)});
    }
  }
  if (receivingSinceMs) {
    auto longest = impl_->db.queryInt(
        "SELECT coalesce(max(heartbeat_interval_ms), 0) FROM agents WHERE revoked_ms IS NULL "
        "AND heartbeat_due_home_ms IS NOT NULL");
    if (!longest) return propagate(longest);
    report.holdUntilMs = *receivingSinceMs + grace * *longest;
  }
  // Agents per site that send heartbeats at all, to tell a silent site from a silent agent.
  auto siteAgents = [&](const std::string& customer,
                        const std::string& site) -> Result<std::int64_t> {
    auto s = impl_->db.prepare(
        "SELECT count(*) FROM agents WHERE customer = ?1 AND site = ?2 AND revoked_ms IS NULL "
        "AND heartbeat_due_home_ms IS NOT NULL");
    if (!s) return propagate(s);
    s->bind(1, customer).bind(2, site);
    auto row = s->step();
    if (!row) return propagate(row);
    return s->columnInt(0);
  };
  std::set<std::pair<std::string, std::string>> sites;
  for (const auto& a : silent) sites.emplace(a.customer, a.site);
  for (const auto& [customer, site] : sites) {
    std::vector<const Silent*> here;
    for (const auto& a : silent) {
      if (a.customer == customer && a.site == site) here.push_back(&a);
    }
    auto total = siteAgents(customer, site);
    if (!total) return std::unexpected(total.error());
    // A site with two or more agents, all silent, is one ticket, not one page per agent.
    std::optional<std::int64_t> parent;
    const std::string siteKey = dedupKey(customer, site, "", "", "site_silent");
    auto siteTicket = book.live(siteKey);
    if (!siteTicket) return std::unexpected(siteTicket.error());
    if (*siteTicket) {
      parent = (*siteTicket)->id;
    } else if (*total >= 2 && static_cast<std::int64_t>(here.size()) == *total) {
      TicketRow t;
      t.kind = "site_silent";
      t.customer = customer;
      t.site = site;
      t.problem = "site_silent";
      t.title = fmt::format("all {} agents of site {} are silent", *total, site);
      t.urgent = false;
      t.count = 1;
      t.firstSeenMs = nowMs;
      t.lastSeenMs = nowMs;
      t.openedMs = nowMs;
      t.detail = Json{{"text",
                       "no heartbeat from any agent of the site: a network or power "
                       "outage at the site, or its route to the home"}}
                     .dump();
      if (auto done = book.raise(std::move(t), "watchdog", nowMs); !done) {
        return std::unexpected(done.error());
      }
      auto opened = book.live(siteKey);
      if (!opened || !*opened) return fail("store", "site ticket vanished");
      parent = (*opened)->id;
      ++report.siteOpened;
    }
    for (const Silent* a : here) {
      const std::string key = dedupKey(customer, site, "", a->id, "missing_heartbeat");
      auto existing = book.live(key);
      if (!existing) return std::unexpected(existing.error());
      if (*existing) {
        if (parent && !(*existing)->parentId) {
          auto s = impl_->cached("UPDATE tickets SET parent_id = ?2 WHERE id = ?1");
          if (!s) return propagate(s);
          (*s)->bind(1, (*existing)->id).bind(2, *parent);
          if (auto done = (*s)->run(); !done) return std::unexpected(done.error());
          if (auto done = book.log((*existing)->id, nowMs, "watchdog", "attached",
                                   fmt::format("under site ticket #{}", *parent));
              !done) {
            return std::unexpected(done.error());
          }
        }
        continue;
      }
      TicketRow t;
      t.kind = "missing_heartbeat";
      t.customer = customer;
      t.site = site;
      t.array = a->id;
      t.agentId = a->id;
      t.problem = "missing_heartbeat";
      t.title = fmt::format("missing heartbeat from agent {}", a->name);
      t.urgent = false;
      t.count = 1;
      t.firstSeenMs = a->dueMs;
      t.lastSeenMs = nowMs;
      t.openedMs = nowMs;
      t.parentId = parent;
      t.detail = Json{{"text", fmt::format("the heartbeat due {} ago has not arrived (grace: {} "
                                           "heartbeat intervals of {})",
                                           duration(nowMs - a->dueMs), cfg.graceHeartbeats,
                                           duration(a->intervalMs))}}
                     .dump();
      if (auto done = book.raise(std::move(t), "watchdog", nowMs); !done) {
        return std::unexpected(done.error());
      }
      ++report.missingOpened;
    }
  }

  // 2. Onboarded agents that never sent a heartbeat: shipped, but not installed or cut off.
  {
    auto s = impl_->db.prepare(
        "SELECT a.id, a.customer, a.site, a.name, min(x.since_ms), count(*), "
        "group_concat(x.serial, ', ') FROM agents a JOIN expected_arrays x ON x.agent_id = a.id "
        "WHERE a.revoked_ms IS NULL AND a.heartbeat_received_ms IS NULL "
        "GROUP BY a.id HAVING min(x.since_ms) < ?1 ORDER BY a.customer, a.site, a.id");
    if (!s) return propagate(s);
    s->bind(1, nowMs - cfg.firstReportMs);
    std::vector<TicketRow> never;
    while (true) {
      auto row = s->step();
      if (!row) return propagate(row);
      if (!*row) break;
      TicketRow t;
      t.kind = "never_reported";
      t.customer = s->columnText(1);
      t.site = s->columnText(2);
      t.array = s->columnText(0);
      t.agentId = s->columnText(0);
      t.problem = "never_reported";
      t.title = fmt::format("agent {} has never reported since onboarding", s->columnText(3));
      t.urgent = false;
      t.count = 1;
      t.firstSeenMs = s->columnInt(4);
      t.lastSeenMs = nowMs;
      t.openedMs = nowMs;
      t.detail = Json{{"text", fmt::format("onboarded {} ago with {} array(s) ({}); no heartbeat "
                                           "has arrived: is the appliance or the MSI installed, "
                                           "and may it reach the home on port 9455?",
                                           duration(nowMs - s->columnInt(4)), s->columnInt(5),
                                           s->columnText(6))}}
                     .dump();
      never.push_back(std::move(t));
    }
    s->reset();
    for (auto& t : never) {
      auto existing = book.live(dedupKey(t.customer, t.site, "", t.array, t.problem));
      if (!existing) return std::unexpected(existing.error());
      if (*existing) continue;
      if (auto done = book.raise(std::move(t), "watchdog", nowMs); !done) {
        return std::unexpected(done.error());
      }
      ++report.neverReportedOpened;
    }
  }

  // 2b. Agent certificates near their end: the agent renews a third of the lifetime ahead
  // (docs/security.md), so one still expiring within kCertificateExpiringMs did not renew.
  // A renewal moves the date out and the next pass resolves the ticket.
  {
    // Only the agents that need a change: expiring ones, and renewed ones with a live ticket.
    auto s = impl_->db.prepare(
        "SELECT id, customer, site, name, cert_expires_ms, cert_expires_ms <= ?1 + ?2 FROM agents "
        "a "
        "WHERE (revoked_ms IS NULL AND cert_expires_ms <= ?1 + ?2) OR (cert_expires_ms > ?1 + ?2 "
        "AND EXISTS (SELECT 1 FROM tickets t WHERE t.agent_id = a.id AND t.kind = "
        "'certificate_expiring' AND t.state != 'resolved')) ORDER BY customer, site, id");
    if (!s) return propagate(s);
    s->bind(1, nowMs).bind(2, kCertificateExpiringMs);
    struct Cert {
      std::string id, customer, site, name;
      std::int64_t expiresMs;
      bool expiring;
    };
    std::vector<Cert> certs;
    while (true) {
      auto row = s->step();
      if (!row) return propagate(row);
      if (!*row) break;
      certs.push_back(Cert{s->columnText(0), s->columnText(1), s->columnText(2), s->columnText(3),
                           s->columnInt(4), s->columnInt(5) != 0});
    }
    s->reset();
    for (const auto& c : certs) {
      const std::string key = dedupKey(c.customer, c.site, "", c.id, "certificate_expiring");
      auto existing = book.live(key);
      if (!existing) return std::unexpected(existing.error());
      if (!c.expiring) {
        if (*existing) {
          if (auto done = book.resolve(**existing, "watchdog",
                                       fmt::format("the certificate was renewed; it now "
                                                   "expires {}",
                                                   formatTimestamp(c.expiresMs)),
                                       nowMs);
              !done) {
            return std::unexpected(done.error());
          }
        }
        continue;
      }
      if (*existing) continue;
      const bool expired = c.expiresMs <= nowMs;
      TicketRow t;
      t.kind = "certificate_expiring";
      t.customer = c.customer;
      t.site = c.site;
      t.array = c.id;
      t.agentId = c.id;
      t.problem = "certificate_expiring";
      t.title = expired ? fmt::format("agent {}'s certificate has expired", c.name)
                        : fmt::format("agent {}'s certificate expires in {}", c.name,
                                      duration(c.expiresMs - nowMs));
      t.urgent = false;
      t.count = 1;
      t.firstSeenMs = nowMs;
      t.lastSeenMs = nowMs;
      t.openedMs = nowMs;
      t.detail =
          Json{{"text", fmt::format("the agent's TLS certificate {} {} and was not renewed; the "
                                    "agent renews it by itself once a third of its lifetime is "
                                    "left, so it has not reached the home since (or its renewal "
                                    "failed: see its log). Without a renewal it can no longer "
                                    "deliver once the certificate has expired: enroll it again",
                                    expired ? "expired" : "expires", formatTimestamp(c.expiresMs))}}
              .dump();
      if (auto done = book.raise(std::move(t), "watchdog", nowMs); !done) {
        return std::unexpected(done.error());
      }
      ++report.certificateExpiringOpened;
    }
  }

  // 3. Escalation of open tickets nobody acknowledged.
  {
    auto s = impl_->db.prepare("SELECT " PASS_TICKET_COLUMNS
                               "FROM tickets WHERE state = 'open' AND escalate_at_ms <= ?1 "
                               "AND silenced_by IS NULL AND parent_id IS NULL ORDER BY id");
    if (!s) return propagate(s);
    s->bind(1, nowMs);
    std::vector<TicketRow> due;
    while (true) {
      auto row = s->step();
      if (!row) return propagate(row);
      if (!*row) break;
      due.push_back(readTicket(*s));
    }
    s->reset();
    for (const auto& t : due) {
      auto level = static_cast<unsigned>(t.escalationLevel + 1);
      // Past the rota's last level, management alone hears once more; then it stops.
      bool last = level > policy.levels(t.customer);
      auto to = policy.recipients(t.customer, /*urgent=*/true, level, nowMs);
      auto upd = impl_->cached(
          "UPDATE tickets SET escalation_level = ?2, escalate_at_ms = ?3 WHERE id = ?1");
      if (!upd) return propagate(upd);
      const Customer* c = cfg.customer(t.customer);
      std::optional<std::int64_t> next;
      if (!last && c != nullptr && c->escalateAfterMs > 0) next = nowMs + c->escalateAfterMs;
      (*upd)->bind(1, t.id).bind(2, static_cast<std::int64_t>(level)).bind(3, next);
      if (auto done = (*upd)->run(); !done) return std::unexpected(done.error());
      auto n = book.notice(t, "escalated", nowMs);
      n.detail = fmt::format("not acknowledged {} after it opened; escalation level {}",
                             duration(nowMs - t.openedMs), level);
      if (auto done = book.log(t.id, nowMs, "watchdog", "escalated",
                               fmt::format("level {}: {} recipient(s)", level, to.size()));
          !done) {
        return std::unexpected(done.error());
      }
      if (!to.empty()) {
        if (auto done = book.enqueue(t.id, n, to, nowMs, nowMs); !done) {
          return std::unexpected(done.error());
        }
      }
      ++report.escalated;
    }
  }

  // 4. Storms that ended: one summary each.
  {
    auto s = impl_->db.prepare(
        "SELECT customer, site, started_ms, tickets FROM storms WHERE last_ms <= ?1");
    if (!s) return propagate(s);
    s->bind(1, nowMs - cfg.stormWindowMs);
    struct Ended {
      std::string customer, site;
      std::int64_t startedMs, tickets;
    };
    std::vector<Ended> ended;
    while (true) {
      auto row = s->step();
      if (!row) return propagate(row);
      if (!*row) break;
      ended.push_back(Ended{s->columnText(0), s->columnText(1), s->columnInt(2), s->columnInt(3)});
    }
    s->reset();
    for (const auto& e : ended) {
      auto list = impl_->db.prepare(
          "SELECT id, title, array FROM tickets WHERE customer = ?1 AND site = ?2 AND "
          "opened_ms >= ?3 AND parent_id IS NULL ORDER BY id");
      if (!list) return propagate(list);
      list->bind(1, e.customer).bind(2, e.site).bind(3, e.startedMs);
      std::string lines;
      int shown = 0;
      std::int64_t all = 0;
      while (true) {
        auto row = list->step();
        if (!row) return propagate(row);
        if (!*row) break;
        ++all;
        if (shown++ < 50) {
          lines += fmt::format("#{} {} {}\n", list->columnInt(0), list->columnText(2),
                               list->columnText(1));
        }
      }
      if (all > 50) lines += fmt::format("... and {} more\n", all - 50);
      notify::Notice n;
      n.kind = "storm_summary";
      n.customer = e.customer;
      n.site = e.site;
      n.problem = fmt::format("storm at {}/{} is over: {} tickets", e.customer, e.site, all);
      n.count = all;
      n.firstSeenMs = e.startedMs;
      n.lastSeenMs = nowMs;
      n.detail = lines;
      auto to = policy.recipients(e.customer, /*urgent=*/false, 1, nowMs);
      if (!to.empty()) {
        if (auto done = book.enqueue(std::nullopt, n, to, nowMs, nowMs); !done) {
          return std::unexpected(done.error());
        }
      }
      auto del = impl_->db.prepare("DELETE FROM storms WHERE customer = ?1 AND site = ?2");
      if (!del) return propagate(del);
      del->bind(1, e.customer).bind(2, e.site);
      if (auto done = del->run(); !done) return std::unexpected(done.error());
      ++report.stormSummaries;
    }
  }
  if (auto done = tx->commit(); !done) return std::unexpected(done.error());
  return report;
}

// --- Store: silences -------------------------------------------------------------------------

Result<std::int64_t> Store::addSilence(const SilenceRow& x) {
  if (x.endsMs <= x.startsMs) {
    return fail("silence.invalid", "a silence must end after it starts");
  }
  if (x.customer.empty() && x.site.empty() && x.array.empty() && x.code.empty()) {
    return fail("silence.invalid",
                "a silence needs at least one of customer, site, array or code; silencing "
                "everything would hide every alert");
  }
  if (x.author.empty() || x.reason.empty()) {
    return fail("silence.invalid", "a silence needs an author and a reason");
  }
  auto s = impl_->db.prepare(
      "INSERT INTO silences (customer, site, array, code, starts_ms, ends_ms, author, reason, "
      "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  if (!s) return propagate(s);
  s->bind(1, x.customer).bind(2, x.site).bind(3, x.array).bind(4, x.code).bind(5, x.startsMs);
  s->bind(6, x.endsMs).bind(7, x.author).bind(8, x.reason).bind(9, x.createdMs);
  if (auto done = s->run(); !done) return std::unexpected(done.error());
  return impl_->db.queryInt("SELECT last_insert_rowid()");
}

Result<std::vector<SilenceRow>> Store::silences(std::int64_t nowMs, bool all) {
  auto s = impl_->db.prepare(
      "SELECT id, customer, site, array, code, starts_ms, ends_ms, author, reason, created_ms, "
      "removed_ms, removed_by FROM silences WHERE ?2 = 1 OR (removed_ms IS NULL AND "
      "ends_ms > ?1) ORDER BY id");
  if (!s) return propagate(s);
  s->bind(1, nowMs).bind(2, std::int64_t{all ? 1 : 0});
  std::vector<SilenceRow> out;
  while (true) {
    auto row = s->step();
    if (!row) return propagate(row);
    if (!*row) break;
    SilenceRow x;
    x.id = s->columnInt(0);
    x.customer = s->columnText(1);
    x.site = s->columnText(2);
    x.array = s->columnText(3);
    x.code = s->columnText(4);
    x.startsMs = s->columnInt(5);
    x.endsMs = s->columnInt(6);
    x.author = s->columnText(7);
    x.reason = s->columnText(8);
    x.createdMs = s->columnInt(9);
    x.removedMs = s->columnOptInt(10);
    x.removedBy = s->columnText(11);
    out.push_back(std::move(x));
  }
  return out;
}

Status Store::removeSilence(std::int64_t id, std::string_view who, std::int64_t nowMs) {
  auto s = impl_->db.prepare(
      "UPDATE silences SET removed_ms = ?2, removed_by = ?3 WHERE id = ?1 AND removed_ms IS NULL");
  if (!s) return propagate(s);
  s->bind(1, id).bind(2, nowMs).bind(3, who);
  if (auto done = s->run(); !done) return done;
  if (impl_->db.changes() == 0) {
    return fail("silence.unknown", fmt::format("no active silence #{}", id));
  }
  return {};
}

}  // namespace pass::home
