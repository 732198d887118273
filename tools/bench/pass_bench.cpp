// pass-bench: N concurrent agents posting sealed envelopes to a running pass-home, one envelope
// per request on keep-alive mutual-TLS connections, as real agents do. Envelopes are sealed, and
// their HTTP requests written out, before the clock starts. Prints envelopes/s, events/s, p50/p99
// latency, the home's peak RSS, and the one-core crypto ceiling (verify + open per second).
//
//   pass-bench --home-bin build/dev/home/pass-home --agents 32 --envelopes 400 --events 1

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pass/config.hpp"
#include "pass/crypto.hpp"
#include "pass/envelope.hpp"

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

std::string reportPayload(int events, std::uint64_t seq) {
  nlohmann::json evs = nlohmann::json::array();
  for (int i = 0; i < events; ++i) {
    evs.push_back({{"array", "410123"},
                   {"code", "307080"},
                   {"severity", "acute"},
                   {"occurred_ms", nowMs()},
                   {"text", fmt::format("DKC processor failure, seq {} event {}", seq, i)},
                   {"raw", "0123456789abcdef0123456789abcdef"}});
  }
  nlohmann::json j = {{"schema", 1},
                      {"type", "report"},
                      {"agent_version", PASS_VERSION},
                      {"sent_ms", nowMs()},
                      {"array", {{"serial", "410123"}, {"family", "hitachi_svp"}}},
                      {"events", std::move(evs)}};
  return j.dump();
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

// CPU seconds (user + system) a process has used so far, from /proc/PID/stat.
double cpuSeconds(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string skip;
  for (int i = 0; i < 11; ++i) fields >> skip;  // state .. cmajflt (fields 3-13)
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

asio::awaitable<void> connectAgent(Agent& a, asio::ip::tcp::endpoint ep) {
  auto ex = co_await asio::this_coro::executor;
  a.stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ex, *a.ctx);
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

asio::awaitable<void> postAll(Agent& a, std::vector<double>& latenciesUs, int& failures) {
  std::string buffer;
  latenciesUs.reserve(a.requests.size());
  for (const auto& request : a.requests) {
    auto t0 = Clock::now();
    co_await asio::async_write(*a.stream, asio::buffer(request), asio::use_awaitable);
    auto [status, body] = co_await readResponse(*a.stream, buffer);
    latenciesUs.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (status != "HTTP/1.1 200 OK" || body.find("\"accepted\"") == std::string::npos) {
      if (++failures <= 3) std::cerr << "unexpected answer: " << status << " " << body << "\n";
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

int benchmark(const Options& o) {
  auto root = fs::temp_directory_path() / fmt::format("pass-bench-{}", getpid());
  fs::create_directories(root);
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

  std::vector<Agent> agents(static_cast<std::size_t>(o.agents));
  for (int i = 0; i < o.agents; ++i) {
    auto out = root / fmt::format("agent-{}", i);
    runCommand(
        fmt::format("'{}' enroll --state '{}' --customer Bench --site Lab --agent a{} "
                    "--out '{}' --endpoint https://127.0.0.1:{} >/dev/null",
                    o.homeBin, homeState.string(), i, out.string(), port));
    auto& a = agents[static_cast<std::size_t>(i)];
    auto cfg = pass::loadAgentConfig(out / "agent.xml");
    check(cfg.has_value(), cfg ? "" : cfg.error().message);
    a.cfg = *cfg;
    auto sign = pass::Ed25519Key::loadPem(cfg->signKey.string());
    auto hpke = pass::X25519Key::loadPem(cfg->homeHpke.string());
    check(sign.has_value() && hpke.has_value(), "cannot load agent keys");
    pass::EnvelopeHeader h;
    h.agentId = cfg->agentId;
    h.keyId = pass::hpkeKeyId(*hpke);
    for (int n = 1; n <= o.envelopes; ++n) {
      h.seq = static_cast<std::uint64_t>(n);
      h.createdMs = nowMs();
      auto env = pass::sealEnvelope(h, reportPayload(o.events, h.seq), *hpke, *sign);
      check(env.has_value(), "seal failed");
      a.requests.push_back(envelopeRequest(*env));
    }
    a.ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    a.ctx->set_verify_mode(ssl::verify_peer);
    a.ctx->load_verify_file(cfg->homeCa.string());
    a.ctx->use_certificate_chain_file(cfg->tlsCert.string());
    a.ctx->use_private_key_file(cfg->tlsKey.string(), ssl::context::pem);
  }

  asio::io_context io(1);
  asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"),
                             static_cast<unsigned short>(port));
  for (auto& a : agents) asio::co_spawn(io, connectAgent(a, ep), asio::detached);
  io.run();
  io.restart();

  std::vector<std::vector<double>> lat(agents.size());
  int failures = 0;
  const double homeCpu0 = cpuSeconds(home);
  const double selfCpu0 = cpuSeconds(getpid());
  auto t0 = Clock::now();
  for (std::size_t i = 0; i < agents.size(); ++i) {
    asio::co_spawn(io, postAll(agents[i], lat[i], failures), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  }
  io.run();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const double homeCpu = cpuSeconds(home) - homeCpu0;
  const double selfCpu = cpuSeconds(getpid()) - selfCpu0;

  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  long hwm = peakRssKb(home, "VmHWM:");
  double total = static_cast<double>(all.size());
  std::cout << fmt::format(
      "agents {} x {} envelopes, {} event(s) each, home threads {}\n"
      "throughput: {:.0f} envelopes/s, {:.0f} events/s ({} envelopes in {:.2f} s, {} failures)\n"
      "latency: p50 {:.2f} ms, p99 {:.2f} ms\n"
      "home peak RSS: {:.1f} MB\n"
      "CPU per envelope: home {:.0f} us, load generator {:.0f} us\n",
      o.agents, o.envelopes, o.events, o.homeThreads, total / secs, total * o.events / secs,
      all.size(), secs, failures, percentile(all, 0.50) / 1000, percentile(all, 0.99) / 1000,
      static_cast<double>(hwm) / 1024.0, homeCpu * 1e6 / total, selfCpu * 1e6 / total);

  for (auto& a : agents) a.stream.reset();
  kill(home, SIGTERM);
  waitpid(home, nullptr, 0);
  cryptoCeiling(o, homeState, agents.front());
  fs::remove_all(root);
  return failures == 0 ? 0 : 1;
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
      "crypto-seconds", po::value(&o.cryptoSeconds)->default_value(2.0), "crypto ceiling duration");
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
