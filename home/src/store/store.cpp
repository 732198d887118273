// Store (pass/home/store.hpp) over its backends: opens the one the location names and hands
// every call to it (store/sqlite/store.cpp, store/postgres/store.cpp); checks here what needs
// no database.

#include "pass/home/store.hpp"

#include <utility>

#include "store/postgres/store.hpp"
#include "store/sqlite/store.hpp"
#include "store/store_impl.hpp"

namespace pass::home {

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

Result<Store> Store::open(const StoreLocation& where, Mode mode) {
  auto impl = where.postgresUrl.empty()
                  ? sqlite::openSqliteStore(where.sqliteFile, mode)
                  : postgres::openPostgresStore(where.postgresUrl, where.passwordFile, mode);
  if (!impl) return propagate(impl);
  return Store(std::move(*impl));
}

Result<Store> Store::open(const std::filesystem::path& file, Mode mode) {
  return open(StoreLocation{.sqliteFile = file}, mode);
}

Result<std::int64_t> Store::schemaVersion() { return impl_->schemaVersion(); }
Status Store::addAgent(const NewAgent& agent) { return impl_->addAgent(agent); }
Result<std::optional<AgentAuth>> Store::agentAuth(std::string_view agentId) {
  return impl_->agentAuth(agentId);
}
Status Store::renewCertificate(const CertificateRenewal& renewal) {
  return impl_->renewCertificate(renewal);
}
Status Store::revokeAgent(std::string_view agentId, std::int64_t nowMs) {
  return impl_->revokeAgent(agentId, nowMs);
}
Result<std::vector<AgentSummary>> Store::agents() { return impl_->agents(); }
Result<std::vector<std::string>> Store::revokedAgents() { return impl_->revokedAgents(); }
Result<std::vector<ExpectedArray>> Store::expectedArrays(std::string_view agentId) {
  return impl_->expectedArrays(agentId);
}
Status Store::setExpectedArrays(std::string_view agentId, std::span<const ExpectedArray> arrays,
                                std::int64_t nowMs) {
  return impl_->setExpectedArrays(agentId, arrays, nowMs);
}
Result<std::vector<StoredEnvelope>> Store::envelopes(const std::optional<std::string>& agentId) {
  return impl_->envelopes(agentId);
}
Result<std::vector<StoredEvent>> Store::events(const std::optional<std::string>& array) {
  return impl_->events(array);
}
Result<std::vector<CommitResult>> Store::commit(std::span<const EnvelopeRecord* const> batch) {
  return impl_->commit(batch);
}

void Store::setPolicy(std::shared_ptr<const Policy> policy) { impl_->policy = std::move(policy); }
void Store::setLogger(Logger& log) { impl_->log = &log; }
std::int64_t Store::takeEnqueued() { return std::exchange(impl_->enqueued, 0); }

Result<std::vector<TicketRow>> Store::tickets(const TicketFilter& filter) {
  return impl_->tickets(filter);
}
Result<std::optional<TicketRow>> Store::ticket(std::int64_t id) { return impl_->ticket(id); }
Result<std::vector<TicketLogRow>> Store::ticketLog(std::int64_t id) { return impl_->ticketLog(id); }
Result<std::vector<OutboxRow>> Store::outbox(std::optional<std::int64_t> ticketId) {
  return impl_->outboxQueue().rows(ticketId);
}
OutboxQueue& Store::outboxQueue() { return impl_->outboxQueue(); }

Result<TicketRow> Store::changeTicket(std::int64_t id, TicketAction action, std::string_view who,
                                      std::string_view note, std::int64_t nowMs) {
  if (!impl_->policy) return fail("ticket.policy", "no policy: load home.xml first");
  return impl_->changeTicket(id, action, who, note, nowMs);
}

Result<WatchdogReport> Store::watchdog(std::int64_t nowMs,
                                       std::optional<std::int64_t> receivingSinceMs) {
  if (!impl_->policy) return fail("ticket.policy", "no policy: load home.xml first");
  return impl_->watchdog(nowMs, receivingSinceMs);
}

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
  return impl_->addSilence(x);
}
Result<std::vector<SilenceRow>> Store::silences(std::int64_t nowMs, bool all) {
  return impl_->silences(nowMs, all);
}
Status Store::removeSilence(std::int64_t id, std::string_view who, std::int64_t nowMs) {
  return impl_->removeSilence(id, who, nowMs);
}

}  // namespace pass::home
