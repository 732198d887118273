// One envelope from bytes to rows: framing, agent checks, signature, opening, payload.

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
constexpr std::string_view kIntervalError = "interval_s must be seconds (an unsigned integer)";

// Counts what nlohmann's lexer has consumed, so that the SAX handler can cut each event
// object out of the original text instead of re-serialising it. The lexer reads a structural
// character exactly once and never reads past a closing brace before reporting it, so at
// start_object the '{' is the last character consumed and at end_object the '}' is.
class TrackingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackingIterator(const char* p, const char** consumed) : p_(p), consumed_(consumed) {}
  reference operator*() const { return *p_; }
  TrackingIterator& operator++() {
    *consumed_ = ++p_;
    return *this;
  }
  TrackingIterator operator++(int) {
    auto old = *this;
    ++*this;
    return old;
  }
  bool operator==(const TrackingIterator& o) const { return p_ == o.p_; }

 private:
  const char* p_;
  const char** consumed_;
};

// Extracts what the home stores from a payload in one pass, without building a DOM: the
// decrypted payload of a 50-event report is parsed at tens of thousands of events a second.
class PayloadHandler {
 public:
  explicit PayloadHandler(const char** consumed) : consumed_(consumed) {}

  bool null() { return scalar(Scalar::kNull, {}, {}); }
  bool boolean(bool) { return scalar(Scalar::kOther, {}, {}); }
  bool number_integer(std::int64_t v) {
    return scalar(v >= 0 ? Scalar::kUnsigned : Scalar::kInteger, static_cast<std::uint64_t>(v),
                  std::to_string(v));
  }
  bool number_unsigned(std::uint64_t v) { return scalar(Scalar::kUnsigned, v, std::to_string(v)); }
  bool number_float(double, const std::string& raw) { return scalar(Scalar::kFloat, {}, raw); }
  bool string(std::string& v) { return scalar(Scalar::kString, {}, std::move(v)); }
  bool binary(Json::binary_t&) { return scalar(Scalar::kOther, {}, {}); }

  bool key(std::string& k) {
    if (depth_ == 1) topKey_ = std::move(k);
    if (depth_ == 2 && topKey_ == "array" && !inEventsArray_) arrayKey_ = std::move(k);
    if (inEvent() && depth_ == 3) eventKey_ = std::move(k);
    return true;
  }

  bool start_object(std::size_t) {
    ++depth_;
    if (depth_ == 1) return true;
    if (depth_ == 2) return nonScalarAtTop();
    if (depth_ == 3 && inEventsArray_) {
      events_.emplace_back();
      eventStart_ = *consumed_ - 1;
      eventKey_.clear();
      inEventObject_ = true;
    }
    if (depth_ == 4 && inEventObject_) nonScalarInEvent();
    return true;
  }

  bool end_object() {
    if (depth_ == 3 && inEventObject_) {
      events_.back().payload.assign(eventStart_, *consumed_);
      inEventObject_ = false;
    }
    --depth_;
    return true;
  }

  bool start_array(std::size_t) {
    ++depth_;
    if (depth_ == 1) return fail("the payload is not a JSON object");
    if (depth_ == 2) {
      if (topKey_ == "events") {
        // A repeated key replaces the earlier value, as in a DOM parse.
        inEventsArray_ = true;
        sawEventsArray_ = true;
        events_.clear();
        eventsError_.clear();
        return true;
      }
      return nonScalarAtTop();
    }
    if (depth_ == 3 && inEventsArray_) noteEventsError(notObject());
    if (depth_ == 4 && inEventObject_) nonScalarInEvent();
    return true;
  }

  bool end_array() {
    if (depth_ == 2) inEventsArray_ = false;
    --depth_;
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    if (error_.empty()) error_ = "the payload is not valid JSON";
    return false;
  }

  std::expected<ParsedPayload, std::string> result() && {
    if (!error_.empty()) return std::unexpected(std::move(error_));
    if (!schemaOk_) return std::unexpected("\"schema\" must be 1");
    if (std::find(kPayloadTypes.begin(), kPayloadTypes.end(), type_) == kPayloadTypes.end())
      return std::unexpected("\"type\" must be one of heartbeat, test, report");
    ParsedPayload out;
    out.type = std::move(type_);
    if (out.type == "heartbeat") {
      if (!dueError_.empty()) return std::unexpected(std::move(dueError_));
      if (!intervalError_.empty()) return std::unexpected(std::move(intervalError_));
      out.nextDueMs = nextDueMs_;
      out.intervalMs = intervalMs_;
    }
    if (out.type == "report") {
      if (!sawEventsArray_) return std::unexpected("a report needs an \"events\" array");
      if (!eventsError_.empty()) return std::unexpected(std::move(eventsError_));
      out.events = std::move(events_);
      out.arrayModel = std::move(arrayModel_);
      out.arrayName = std::move(arrayName_);
    }
    return out;
  }

 private:
  enum class Scalar { kNull, kString, kUnsigned, kInteger, kFloat, kOther };

  bool inEvent() const { return inEventsArray_ && depth_ >= 3; }
  std::string notObject() const {
    return fmt::format("events[{}] is not an object", events_.size());
  }
  bool fail(std::string why) {
    error_ = std::move(why);
    return false;
  }
  void noteEventsError(std::string why) {
    if (eventsError_.empty()) eventsError_ = std::move(why);
  }

  // An object or array as a top-level member other than "events": nothing to extract.
  bool nonScalarAtTop() {
    if (topKey_ == "events") noteEventsError("a report needs an \"events\" array");
    if (topKey_ == "schema") schemaOk_ = false;
    if (topKey_ == "type") type_.clear();
    if (topKey_ == "next_due_ms") dueError_ = msError("next_due_ms");
    if (topKey_ == "interval_s") intervalError_ = kIntervalError;
    return true;
  }

  // An object or array as the value of an event member.
  void nonScalarInEvent() {
    if (eventKey_ == "occurred_ms") {
      noteEventsError(msError(fmt::format("events[{}].occurred_ms", events_.size() - 1)));
    } else if (eventKey_ == "array" || eventKey_ == "code" || eventKey_ == "severity" ||
               eventKey_ == "id" || eventKey_ == "family" || eventKey_ == "kind" ||
               eventKey_ == "component" || eventKey_ == "text") {
      noteEventsError(fmt::format("events[{}].{} must be a string", events_.size() - 1, eventKey_));
    }
  }

  static std::string msError(std::string_view where) {
    return fmt::format("{} must be milliseconds since 1970 (an unsigned integer)", where);
  }

  bool scalar(Scalar kind, std::uint64_t unsignedValue, std::string text) {
    if (depth_ == 0) return fail("the payload is not a JSON object");
    if (depth_ == 1) {
      topLevel(kind, unsignedValue, std::move(text));
      return true;
    }
    if (depth_ == 2 && inEventsArray_) {
      noteEventsError(notObject());
      return true;
    }
    if (depth_ == 2 && topKey_ == "array" && kind == Scalar::kString) {
      if (arrayKey_ == "model") arrayModel_ = std::move(text);
      if (arrayKey_ == "name") arrayName_ = std::move(text);
      return true;
    }
    // Only inside an event object: an array in the events array is refused above, and what
    // it holds belongs to no event.
    if (depth_ == 3 && inEventObject_) eventField(kind, unsignedValue, std::move(text));
    return true;
  }

  void topLevel(Scalar kind, std::uint64_t unsignedValue, std::string text) {
    if (topKey_ == "schema") {
      schemaOk_ = kind == Scalar::kUnsigned && unsignedValue == 1;
    } else if (topKey_ == "type") {
      type_ = kind == Scalar::kString ? std::move(text) : std::string();
    } else if (topKey_ == "events") {
      noteEventsError("a report needs an \"events\" array");
    } else if (topKey_ == "next_due_ms") {
      dueError_.clear();
      nextDueMs_.reset();
      if (kind == Scalar::kUnsigned && unsignedValue <= kInt64Max) {
        nextDueMs_ = static_cast<std::int64_t>(unsignedValue);
      } else if (kind != Scalar::kNull) {
        dueError_ = msError("next_due_ms");
      }
    } else if (topKey_ == "interval_s") {
      intervalError_.clear();
      intervalMs_.reset();
      if (kind == Scalar::kUnsigned) {
        // Seconds to milliseconds without overflow; the store caps it at a day anyway.
        intervalMs_ = static_cast<std::int64_t>(std::min(unsignedValue, kInt64Max / 1000)) * 1000;
      } else if (kind != Scalar::kNull) {
        intervalError_ = kIntervalError;
      }
    }
  }

  void eventField(Scalar kind, std::uint64_t unsignedValue, std::string text) {
    auto& e = events_.back();
    std::size_t index = events_.size() - 1;
    std::optional<std::string>* field = eventKey_ == "array"       ? &e.array
                                        : eventKey_ == "code"      ? &e.code
                                        : eventKey_ == "severity"  ? &e.severity
                                        : eventKey_ == "id"        ? &e.id
                                        : eventKey_ == "family"    ? &e.family
                                        : eventKey_ == "kind"      ? &e.kind
                                        : eventKey_ == "component" ? &e.component
                                        : eventKey_ == "text"      ? &e.text
                                                                   : nullptr;
    if (field) {
      // Numbers are kept as their text (some arrays number their alert codes).
      if (kind == Scalar::kString || kind == Scalar::kUnsigned || kind == Scalar::kInteger ||
          kind == Scalar::kFloat) {
        *field = std::move(text);
      } else if (kind == Scalar::kNull) {
        field->reset();
      } else {
        noteEventsError(fmt::format("events[{}].{} must be a string", index, eventKey_));
      }
      return;
    }
    if (eventKey_ != "occurred_ms") return;
    e.occurredMs.reset();
    if (kind == Scalar::kUnsigned && unsignedValue <= kInt64Max) {
      e.occurredMs = static_cast<std::int64_t>(unsignedValue);
    } else if (kind != Scalar::kNull) {
      noteEventsError(msError(fmt::format("events[{}].occurred_ms", index)));
    }
  }

  const char** consumed_;
  int depth_ = 0;
  std::string topKey_;
  std::string eventKey_;
  std::string arrayKey_;
  std::optional<std::string> arrayModel_;
  std::optional<std::string> arrayName_;
  bool schemaOk_ = false;
  std::string type_;
  std::optional<std::int64_t> nextDueMs_;
  std::string dueError_;
  std::optional<std::int64_t> intervalMs_;
  std::string intervalError_;
  bool inEventsArray_ = false;
  bool inEventObject_ = false;  // inside events[i] (depth 3), which is an object
  bool sawEventsArray_ = false;
  std::vector<EventRecord> events_;
  const char* eventStart_ = nullptr;
  std::string eventsError_;
  std::string error_;
};

}  // namespace

std::expected<ParsedPayload, std::string> parsePayload(std::string_view json) {
  const char* consumed = json.data();
  PayloadHandler handler(&consumed);
  TrackingIterator first(json.data(), &consumed);
  TrackingIterator last(json.data() + json.size(), &consumed);
  Json::sax_parse(first, last, &handler);
  return std::move(handler).result();
}

AgentDirectory::AgentDirectory(StoreLocation database) : database_(std::move(database)) {}
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
                                       database_.name(), agentId, key.error().message));
    }
    cached = keys_.insert_or_assign(agentId, CachedKey{row.signKey, std::move(*key)}).first;
  }
  return Entry{cached->second.key, row.certSerial, row.revokedMs.has_value(),
               row.previousCertSerial, row.previousCertUntilMs};
}

Ingest::Ingest(AgentDirectory& agents, X25519Key homeKey, WindowOptions window)
    : Ingest(agents, std::make_shared<HpkeKeyRing>(std::move(homeKey)), window) {}

Ingest::Ingest(AgentDirectory& agents, std::shared_ptr<HpkeKeyRing> homeKeys, WindowOptions window)
    : agents_(agents), homeKeys_(std::move(homeKeys)), window_(window) {}

Result<const std::optional<AgentDirectory::Entry>*> Ingest::lookup(const std::string& agentId,
                                                                   ConnectionAuth& auth,
                                                                   std::int64_t nowMs) {
  // A clock that stepped back makes the memory stale too.
  bool fresh = auth.checkedMs && auth.agentId == agentId && nowMs >= *auth.checkedMs &&
               nowMs - *auth.checkedMs < window_.authRecheckMs;
  if (!fresh) {
    auto found = agents_.find(agentId);
    if (!found) return std::unexpected(found.error());
    auth = ConnectionAuth{agentId, std::move(*found), nowMs};
  }
  return &auth.entry;
}

Ingest::Outcome Ingest::check(ByteView envelope, const PeerIdentity& peer, ConnectionAuth& auth,
                              std::int64_t nowMs) {
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

  auto found = lookup(agentId, auth, nowMs);
  if (!found) {
    out.result = found.error();
    return out;
  }
  const auto& entry = **found;
  if (!entry) {
    return refuse(403, "unknown_agent",
                  fmt::format("agent {} is not enrolled at this home", agentId));
  }
  if (entry->revoked) {
    return refuse(403, "revoked",
                  fmt::format("agent {} was revoked; enroll the array again", agentId));
  }
  if (!entry->acceptsCertificate(peer.serialHex, nowMs)) {
    return refuse(403, "certificate_mismatch",
                  fmt::format("the client certificate (serial {}) is not the one enrolled for "
                              "agent {}, nor the one it replaced within the grace period",
                              peer.serialHex, agentId));
  }

  auto homeKeys = homeKeys_->get(nowMs);
  EnvelopeKeys keys;
  keys.agentKey = [&entry](const AgentId&) -> Result<Ed25519Key> { return entry->signKey; };
  keys.homeKey = [&](const KeyId& id) -> Result<X25519Key> {
    const HpkeKey* key = homeKeys->find(id);
    if (!key) {
      return fail("unknown_key_id",
                  fmt::format("the envelope is sealed to HPKE key id {}, which this home does "
                              "not hold (its current key id is {})",
                              toHex(id), toHex(homeKeys->current().id)));
    }
    return key->key;
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
    return refuse(
        422, "stale",
        fmt::format("created_ms {} is {} days before the home's clock; the window is "
                    "{} days",
                    created, (nowMs - created) / 86'400'000, window_.maxAgeMs / 86'400'000));
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
  checked.sealedTo = header->keyId;
  if (header->keyId != homeKeys->current().id) checked.newHomeKey = homeKeys->current();
  auto& r = checked.record;
  r.agentId = agentId;
  r.seq = header->seq;
  r.createdMs = created;
  r.receivedMs = nowMs;
  r.type = std::move(payload->type);
  r.size = envelope.size();
  r.payload = std::move(opened->payload);
  r.nextDueMs = payload->nextDueMs;
  r.intervalMs = payload->intervalMs;
  r.events = std::move(payload->events);
  r.arrayModel = std::move(payload->arrayModel);
  r.arrayName = std::move(payload->arrayName);
  out.result = std::move(checked);
  return out;
}

}  // namespace pass::home
