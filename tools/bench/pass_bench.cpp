// pass-bench: N concurrent agents posting sealed envelopes to a running pass-home, one envelope
// per request on keep-alive mutual-TLS connections, as real agents do. Envelopes are sealed, and
// their HTTP requests written out, before the clock starts. Prints envelopes/s, events/s, p50/p99
// latency, the home's peak RSS, and the one-core crypto ceiling (verify + open per second).
//
//   pass-bench --home-bin build/dev/home/pass-home --agents 32 --envelopes 400 --events 1
//
// With --endpoint it starts no home: the agents are the enrolled bundles in --bundles (one
// sub-folder each), posting to that running home or HAProxy; --cpu NAME=PID adds the CPU of a
// process and its children (a home, PostgreSQL's postmaster with its backends, haproxy) to the
// figures; --retry-seconds posts an envelope again, on a new connection, until the home has
// answered it; --problems gives each agent's envelopes that many problems (tickets) on an array
// of its own; --heartbeat-seconds makes every envelope a heartbeat announcing the next one in
// that many seconds (the cluster test's silent agent: a real agent's interval is 5 minutes at
// least); --json writes the figures for a script (tools/bench/pass_bench_cluster.py, the cluster
// test).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/program_options.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/config.hpp"
#include "pass/crypto.hpp"
#include "pass/envelope.hpp"
#include "pass/payload.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
namespace fs = std::filesystem;
namespace po = boost::program_options;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string homeBin;
  int agents = 32;
  int envelopes = 400;  // per agent
  int events = 1;       // per envelope
  int homeThreads = 2;
  double cryptoSeconds = 2.0;
  std::string endpoint;           // a running home or HAProxy: start none
  std::string bundles;            // with endpoint: one enrolled agent bundle per sub-folder
  std::vector<std::string> cpu;   // NAME=PID: processes whose CPU per envelope is reported
  double retrySeconds = 0;        // post again until answered, for at most this long
  int problems = 0;               // 0: every envelope the same problem on one shared array
  unsigned heartbeatSeconds = 0;  // > 0: heartbeats due that often instead of reports
  std::string json;               // write the figures there
};

// How the agents' envelopes fared, over all agents.
struct Tally {
  std::uint64_t accepted = 0;    // "status":"accepted": stored by this post
  std::uint64_t duplicates = 0;  // "status":"duplicate": stored before (a post the home
                                 // committed but whose answer was lost)
  std::uint64_t resent = 0;      // posts again after a failed connection or a 5xx
  int failures = 0;              // envelopes never answered 200
};

std::uint64_t nowMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

void check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

int runCommand(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  check(rc == 0, "command failed: " + cmd);
  return rc;
}

// The array and problem of an agent's envelope: with `problems`, agent i watches array 42iiii
// and its envelope seq carries problem code DC1nnn, nnn = seq % problems.
struct Problem {
  std::string array = "410123";
  std::string code = "307080";
};

Problem problemOf(const Options& o, int agent, std::uint64_t seq) {
  if (o.problems <= 0) return {};
  return {fmt::format("42{:04}", agent),
          fmt::format("DC1{:03}", seq % static_cast<std::uint64_t>(o.problems))};
}

std::string reportPayload(int events, std::uint64_t seq, const Problem& problem = {}) {
  nlohmann::json evs = nlohmann::json::array();
  for (int i = 0; i < events; ++i) {
    evs.push_back({{"array", problem.array},
                   {"code", problem.code},
                   {"severity", "acute"},
                   {"occurred_ms", nowMs()},
                   {"text", fmt::format("DKC processor failure, seq {} event {}", seq, i)},
                   {"raw", "0123456789abcdef0123456789abcdef"}});
  }
  nlohmann::json j = {{"schema", 1},
                      {"type", "report"},
                      {"agent_version", PASS_VERSION},
                      {"sent_ms", nowMs()},
                      {"array", {{"serial", problem.array}, {"family", "hitachi_svp"}}},
                      {"events", std::move(evs)}};
  return j.dump();
}

// A heartbeat announcing the next one in `seconds`, as an agent set to that interval sends.
std::string heartbeatPayload(unsigned seconds) {
  pass::payload::HeartbeatInfo info;
  info.sentMs = nowMs();
  info.intervalSeconds = seconds;
  info.nextDueMs = info.sentMs + std::uint64_t{seconds} * 1000;
  return pass::payload::heartbeat(info).dump();
}

struct Agent {
  pass::AgentConfig cfg;
  std::vector<std::string> requests;  // whole HTTP requests, one sealed envelope each
  std::unique_ptr<ssl::context> ctx;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream;
};

long peakRssKb(pid_t pid, const char* field) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  }
  return -1;
}

// From /proc/PID/stat: the parent, the CPU the process used (user + system) and the CPU of its
// children that have ended and been waited for, in seconds. Nothing when it has ended.
struct ProcCpu {
  pid_t parent = 0;
  double own = 0;
  double waitedChildren = 0;
};

std::optional<ProcCpu> procCpu(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 2));
  std::string state;
  ProcCpu out;
  std::string skip;
  fields >> state >> out.parent;
  for (int i = 0; i < 9; ++i) fields >> skip;  // pgrp .. cmajflt (fields 5-13)
  double utime = 0, stime = 0, cutime = 0, cstime = 0;
  fields >> utime >> stime >> cutime >> cstime;
  const auto tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  out.own = (utime + stime) / tick;
  out.waitedChildren = (cutime + cstime) / tick;
  return out;
}

// CPU seconds (user + system) a process has used so far.
double cpuSeconds(pid_t pid) {
  auto cpu = procCpu(pid);
  return cpu ? cpu->own : 0;
}

// CPU seconds of a process and all its descendants, running or ended: PostgreSQL's postmaster
// with its backends, which come and go.
double treeCpuSeconds(pid_t root) {
  std::map<pid_t, ProcCpu> all;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(),
                                     [](unsigned char c) { return std::isdigit(c) != 0; }))
      continue;
    const auto pid = static_cast<pid_t>(std::stol(name));
    if (auto cpu = procCpu(pid)) all.emplace(pid, *cpu);
  }
  auto isUnder = [&all, root](pid_t pid) {
    for (int depth = 0; pid > 1 && depth < 64; ++depth) {
      if (pid == root) return true;
      auto it = all.find(pid);
      if (it == all.end()) return false;
      pid = it->second.parent;
    }
    return false;
  };
  double total = 0;
  for (const auto& [pid, cpu] : all) {
    if (pid == root)
      total += cpu.own + cpu.waitedChildren;
    else if (isUnder(pid))
      total += cpu.own;
  }
  return total;
}

// --cpu NAME=PID
struct Watched {
  std::string name;
  pid_t pid = 0;
  double before = 0;
};

std::vector<Watched> watchedProcesses(const std::vector<std::string>& specs) {
  std::vector<Watched> out;
  for (const auto& spec : specs) {
    auto eq = spec.find('=');
    check(eq != std::string::npos && eq > 0, "--cpu takes NAME=PID, not '" + spec + "'");
    out.push_back({spec.substr(0, eq), static_cast<pid_t>(std::stol(spec.substr(eq + 1)))});
  }
  return out;
}

asio::awaitable<void> connectAgent(Agent& a, asio::ip::tcp::endpoint ep) {
  auto ex = co_await asio::this_coro::executor;
  a.stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ex, *a.ctx);
  // No request waits longer for its answer (a home that died with it: post it again).
  beast::get_lowest_layer(*a.stream).expires_after(std::chrono::seconds(30));
  co_await beast::get_lowest_layer(*a.stream).async_connect(ep, asio::use_awaitable);
  co_await a.stream->async_handshake(ssl::stream_base::client, asio::use_awaitable);
}

// Reads one HTTP response into `buf` (which may already hold the start of it) and returns its
// status line and body. The home's answers are small and never chunked: the headers end at the
// first blank line and Content-Length gives the body. Lighter than Beast's parser, so that the
// load generator takes less of the 2 cores it shares with the home.
asio::awaitable<std::pair<std::string, std::string>> readResponse(
    beast::ssl_stream<beast::tcp_stream>& stream, std::string& buf) {
  char chunk[4096];
  std::size_t headerEnd;
  while ((headerEnd = buf.find("\r\n\r\n")) == std::string::npos) {
    auto n = co_await stream.async_read_some(asio::buffer(chunk), asio::use_awaitable);
    buf.append(chunk, n);
  }
  std::size_t bodyLength = 0;
  if (auto at = buf.find("Content-Length: "); at != std::string::npos && at < headerEnd) {
    bodyLength = std::stoul(buf.substr(at + 16, 12));
  }
  while (buf.size() < headerEnd + 4 + bodyLength) {
    auto n = co_await stream.async_read_some(asio::buffer(chunk), asio::use_awaitable);
    buf.append(chunk, n);
  }
  std::pair<std::string, std::string> out(buf.substr(0, buf.find("\r\n")),
                                          buf.substr(headerEnd + 4, bodyLength));
  buf.erase(0, headerEnd + 4 + bodyLength);
  co_return out;
}

// Posts the agent's envelopes one after another, each until answered: with retrySeconds, a
// failed connection or a 5xx answer (a home that died, or lost its database) sends the same
// envelope again on a new connection, which HAProxy gives to a live home. Latency is from the
// first try to the answer.
asio::awaitable<void> postAll(Agent& a, asio::ip::tcp::endpoint ep, double retrySeconds,
                              std::vector<double>& latenciesUs, Tally& tally) {
  std::string buffer;
  latenciesUs.reserve(a.requests.size());
  asio::steady_timer pause(co_await asio::this_coro::executor);
  for (const auto& request : a.requests) {
    const auto t0 = Clock::now();
    const auto giveUp = t0 + std::chrono::duration<double>(retrySeconds);
    for (;;) {
      std::string failed;
      try {
        if (!a.stream) {
          co_await connectAgent(a, ep);
          buffer.clear();
        }
        beast::get_lowest_layer(*a.stream).expires_after(std::chrono::seconds(30));
        co_await asio::async_write(*a.stream, asio::buffer(request), asio::use_awaitable);
        auto [status, body] = co_await readResponse(*a.stream, buffer);
        if (status == "HTTP/1.1 200 OK" && body.find("\"accepted\"") != std::string::npos) {
          ++tally.accepted;
        } else if (status == "HTTP/1.1 200 OK" && body.find("\"duplicate\"") != std::string::npos) {
          ++tally.duplicates;
        } else if (status.starts_with("HTTP/1.1 5")) {
          failed = status + " " + body;
        } else {
          if (++tally.failures <= 3)
            std::cerr << "unexpected answer: " << status << " " << body << "\n";
          break;
        }
      } catch (const boost::system::system_error& e) {
        failed = e.what();
      }
      if (failed.empty()) {
        latenciesUs.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        break;
      }
      a.stream.reset();
      if (Clock::now() >= giveUp) {
        if (++tally.failures <= 3) std::cerr << "not answered: " << failed << "\n";
        break;
      }
      ++tally.resent;
      pause.expires_after(std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::use_awaitable);
    }
  }
}

std::string envelopeRequest(const pass::Bytes& envelope) {
  std::string request = fmt::format(
      "POST /v1/envelopes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {}\r\n"
      "Content-Length: {}\r\n\r\n",
      pass::kEnvelopeContentType, envelope.size());
  request.append(envelope.begin(), envelope.end());
  return request;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto idx = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  return v[idx];
}

void cryptoCeiling(const Options& o, const fs::path& homeState, Agent& sample) {
  auto homeKey = pass::X25519Key::loadPem((homeState / "home-hpke.key").string());
  auto agentKey = pass::Ed25519Key::loadPem(sample.cfg.signKey.string());
  check(homeKey.has_value() && agentKey.has_value(), "cannot load keys for the crypto ceiling");
  auto verifyKey = pass::Ed25519Key::fromRawPublic(agentKey->rawPublic());
  pass::EnvelopeKeys keys;
  keys.agentKey = [&](const pass::AgentId&) -> pass::Result<pass::Ed25519Key> {
    return *verifyKey;
  };
  keys.homeKey = [&](const pass::KeyId&) -> pass::Result<pass::X25519Key> { return *homeKey; };
  pass::EnvelopeHeader h;
  h.agentId = sample.cfg.agentId;
  h.createdMs = nowMs();
  h.keyId = pass::hpkeKeyId(*homeKey);
  std::vector<pass::Bytes> envs;
  for (int i = 0; i < 256; ++i) {
    h.seq = 1'000'000 + static_cast<std::uint64_t>(i);
    envs.push_back(*pass::sealEnvelope(h, reportPayload(o.events, h.seq), *homeKey, *agentKey));
  }
  std::uint64_t n = 0;
  auto t0 = Clock::now();
  auto deadline = t0 + std::chrono::duration<double>(o.cryptoSeconds);
  while (Clock::now() < deadline) {
    for (const auto& e : envs) {
      auto opened = pass::openEnvelope(e, keys);
      check(opened.has_value(), "crypto ceiling: open failed");
      ++n;
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << fmt::format(
      "crypto ceiling (one core, verify + open, {}-event): {:.0f} envelopes/s\n", o.events,
      static_cast<double>(n) / secs);
}

// Loads an enrolled bundle, seals its envelopes (before the clock starts) and makes its TLS
// context.
void prepareAgent(Agent& a, const fs::path& bundle, int index, const Options& o) {
  auto cfg = pass::loadAgentConfig(bundle / "agent.xml");
  check(cfg.has_value(), cfg ? "" : cfg.error().message);
  a.cfg = *cfg;
  auto sign = pass::Ed25519Key::loadPem(cfg->signKey.string());
  auto hpke = pass::X25519Key::loadPem(cfg->homeHpke.string());
  check(sign.has_value() && hpke.has_value(), "cannot load agent keys of " + bundle.string());
  pass::EnvelopeHeader h;
  h.agentId = cfg->agentId;
  h.keyId = pass::hpkeKeyId(*hpke);
  for (int n = 1; n <= o.envelopes; ++n) {
    h.seq = static_cast<std::uint64_t>(n);
    h.createdMs = nowMs();
    auto payload = o.heartbeatSeconds > 0
                       ? heartbeatPayload(o.heartbeatSeconds)
                       : reportPayload(o.events, h.seq, problemOf(o, index, h.seq));
    auto env = pass::sealEnvelope(h, payload, *hpke, *sign);
    check(env.has_value(), "seal failed");
    a.requests.push_back(envelopeRequest(*env));
  }
  a.ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  a.ctx->set_verify_mode(ssl::verify_peer);
  a.ctx->load_verify_file(cfg->homeCa.string());
  a.ctx->use_certificate_chain_file(cfg->tlsCert.string());
  a.ctx->use_private_key_file(cfg->tlsKey.string(), ssl::context::pem);
}

// A home of our own, with `agents` agents enrolled in it: its pid and port.
std::pair<pid_t, int> startHome(const Options& o, const fs::path& root) {
  auto homeState = root / "home";
  runCommand(fmt::format("'{}' init --state '{}' >/dev/null", o.homeBin, homeState.string()));
  auto portFile = root / "home.port";
  pid_t home = fork();
  if (home == 0) {
    auto threads = std::to_string(o.homeThreads);
    execl(o.homeBin.c_str(), o.homeBin.c_str(), "serve", "--state", homeState.c_str(), "--listen",
          "127.0.0.1:0", "--port-file", portFile.c_str(), "--threads", threads.c_str(),
          "--admin-listen", "off", static_cast<char*>(nullptr));
    _exit(127);
  }
  int port = 0;
  for (auto deadline = Clock::now() + std::chrono::seconds(20); Clock::now() < deadline;) {
    std::ifstream in(portFile);
    if (in >> port && port > 0) break;
    check(waitpid(home, nullptr, WNOHANG) == 0, "pass-home exited during start-up");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  check(port > 0, "pass-home did not write its port file");
  for (int i = 0; i < o.agents; ++i) {
    runCommand(fmt::format(
        "'{}' enroll --state '{}' --customer Bench --site Lab --agent a{} "
        "--out '{}' --endpoint https://127.0.0.1:{} >/dev/null",
        o.homeBin, homeState.string(), i, (root / fmt::format("agent-{}", i)).string(), port));
  }
  return {home, port};
}

// https://HOST:PORT[/] of --endpoint, resolved.
asio::ip::tcp::endpoint resolveEndpoint(const std::string& url) {
  constexpr std::string_view scheme = "https://";
  check(url.starts_with(scheme), "--endpoint must be https://HOST:PORT, not '" + url + "'");
  auto rest = url.substr(scheme.size());
  if (auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  auto colon = rest.rfind(':');
  check(colon != std::string::npos, "--endpoint has no port: '" + url + "'");
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  auto found = resolver.resolve(rest.substr(0, colon), rest.substr(colon + 1));
  check(!found.empty(), "cannot resolve " + url);
  return *found.begin();
}

int benchmark(const Options& o) {
  auto root = fs::temp_directory_path() / fmt::format("pass-bench-{}", getpid());
  fs::create_directories(root);
  const bool ownHome = o.endpoint.empty();
  pid_t home = 0;
  asio::ip::tcp::endpoint ep;
  std::vector<fs::path> bundles;
  if (ownHome) {
    int port = 0;
    std::tie(home, port) = startHome(o, root);
    ep = {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)};
    for (int i = 0; i < o.agents; ++i) bundles.push_back(root / fmt::format("agent-{}", i));
  } else {
    check(!o.bundles.empty(), "--endpoint needs --bundles DIR (one enrolled bundle per folder)");
    ep = resolveEndpoint(o.endpoint);
    for (const auto& entry : fs::directory_iterator(o.bundles)) {
      if (fs::exists(entry.path() / "agent.xml")) bundles.push_back(entry.path());
    }
    std::sort(bundles.begin(), bundles.end());
    check(!bundles.empty(), "no bundle (a folder with agent.xml) in " + o.bundles);
  }
  auto watched = watchedProcesses(o.cpu);
  if (ownHome) watched.insert(watched.begin(), Watched{"home", home, 0});

  std::vector<Agent> agents(bundles.size());
  for (std::size_t i = 0; i < bundles.size(); ++i) {
    prepareAgent(agents[i], bundles[i], static_cast<int>(i), o);
  }

  asio::io_context io(1);
  for (auto& a : agents) asio::co_spawn(io, connectAgent(a, ep), asio::detached);
  io.run();
  io.restart();

  std::vector<std::vector<double>> lat(agents.size());
  Tally tally;
  for (auto& w : watched) w.before = treeCpuSeconds(w.pid);
  const double selfCpu0 = cpuSeconds(getpid());
  auto t0 = Clock::now();
  for (std::size_t i = 0; i < agents.size(); ++i) {
    asio::co_spawn(io, postAll(agents[i], ep, o.retrySeconds, lat[i], tally),
                   [](std::exception_ptr e) {
                     if (e) std::rethrow_exception(e);
                   });
  }
  io.run();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double selfCpu = cpuSeconds(getpid()) - selfCpu0;

  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  double total = static_cast<double>(all.size());
  const double perEnvelopeUs = total > 0 ? 1e6 / total : 0;
  nlohmann::ordered_json figures = {{"agents", agents.size()},
                                    {"envelopes_per_agent", o.envelopes},
                                    {"events_per_envelope", o.events},
                                    {"answered", all.size()},
                                    {"accepted", tally.accepted},
                                    {"duplicates", tally.duplicates},
                                    {"resent", tally.resent},
                                    {"failures", tally.failures},
                                    {"seconds", secs},
                                    {"envelopes_per_s", total / secs},
                                    {"p50_ms", percentile(all, 0.50) / 1000},
                                    {"p99_ms", percentile(all, 0.99) / 1000},
                                    {"cpu_us_per_envelope", nlohmann::ordered_json::object()}};
  std::string cpuLine;
  for (auto& w : watched) {
    double us = (treeCpuSeconds(w.pid) - w.before) * perEnvelopeUs;
    figures["cpu_us_per_envelope"][w.name] = us;
    cpuLine += fmt::format("{} {:.0f} us, ", w.name, us);
  }
  figures["cpu_us_per_envelope"]["load generator"] = selfCpu * perEnvelopeUs;
  std::cout << fmt::format(
      "agents {} x {} envelopes, {} event(s) each{}\n"
      "throughput: {:.0f} envelopes/s, {:.0f} events/s ({} envelopes in {:.2f} s, {} failures)\n"
      "latency: p50 {:.2f} ms, p99 {:.2f} ms\n",
      agents.size(), o.envelopes, o.events,
      ownHome ? fmt::format(", home threads {}", o.homeThreads) : ", to " + o.endpoint,
      total / secs, total * o.events / secs, all.size(), secs, tally.failures,
      percentile(all, 0.50) / 1000, percentile(all, 0.99) / 1000);
  if (tally.resent > 0 || tally.duplicates > 0) {
    std::cout << fmt::format("posted again: {}, answered duplicate: {}\n", tally.resent,
                             tally.duplicates);
  }
  if (ownHome) {
    long hwm = peakRssKb(home, "VmHWM:");
    figures["home_peak_rss_mb"] = static_cast<double>(hwm) / 1024.0;
    std::cout << fmt::format("home peak RSS: {:.1f} MB\n", static_cast<double>(hwm) / 1024.0);
  }
  std::cout << fmt::format("CPU per envelope: {}load generator {:.0f} us\n", cpuLine,
                           selfCpu * perEnvelopeUs);
  if (!o.json.empty()) {
    std::ofstream out(o.json);
    out << figures.dump(2) << "\n";
    check(out.good(), "cannot write " + o.json);
  }

  for (auto& a : agents) a.stream.reset();
  if (ownHome) {
    kill(home, SIGTERM);
    waitpid(home, nullptr, 0);
    cryptoCeiling(o, root / "home", agents.front());
  }
  fs::remove_all(root);
  return tally.failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  po::options_description desc("pass-bench options");
  desc.add_options()("help,h", "show help")(
      "home-bin", po::value(&o.homeBin)->default_value("build/dev/home/pass-home"),
      "pass-home binary")("agents", po::value(&o.agents)->default_value(32),
                          "concurrent agents (connections)")(
      "envelopes", po::value(&o.envelopes)->default_value(400), "envelopes per agent")(
      "events", po::value(&o.events)->default_value(1), "events per envelope")(
      "home-threads", po::value(&o.homeThreads)->default_value(2), "pass-home --threads")(
      "crypto-seconds", po::value(&o.cryptoSeconds)->default_value(2.0), "crypto ceiling duration")(
      "endpoint", po::value(&o.endpoint),
      "post to this running home or HAProxy (https://HOST:PORT) instead of starting a home")(
      "bundles", po::value(&o.bundles), "with --endpoint: a folder of enrolled agent bundles")(
      "cpu", po::value(&o.cpu)->composing(),
      "NAME=PID: report the CPU per envelope of that process and its children (repeatable)")(
      "retry-seconds", po::value(&o.retrySeconds)->default_value(0),
      "post an envelope again on a new connection after a failure, for this long")(
      "problems", po::value(&o.problems)->default_value(0),
      "problems per agent, each on the agent's own array (0: one problem for all)")(
      "heartbeat-seconds", po::value(&o.heartbeatSeconds)->default_value(0),
      "send heartbeats announcing the next one in this many seconds instead of reports")(
      "json", po::value(&o.json), "write the figures to this file as JSON");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << desc;
      return 0;
    }
    return benchmark(o);
  } catch (const std::exception& e) {
    std::cerr << "pass-bench: " << e.what() << "\n";
    return 1;
  }
}
