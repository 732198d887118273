// Policy (home.xml with its parsed schedules and quiet hours: who hears of a ticket, and
// when), the acknowledgement links' tokens and key, and the outbox's notice JSON
// (docs/tickets.md).

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/crypto.hpp"
#include "pass/home/pki.hpp"
#include "pass/home/tickets.hpp"
#include "platform/fs.hpp"

namespace pass::home {

namespace {

using Json = nlohmann::json;

std::chrono::system_clock::time_point timePoint(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

std::int64_t toMs(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

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
  auto file = StatePaths(stateDir).ackKey();
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

}  // namespace pass::home
