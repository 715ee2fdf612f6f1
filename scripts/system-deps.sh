#!/usr/bin/env bash
# Install what the embedded brokers need from Debian's packages, if missing:
# rabbitmq-server (brings Erlang), a Java 17+ runtime and Maven (fetches Kafka's jars);
# and Chromium, which the browser tests of the live view (/live) drive through
# Playwright (Playwright's own browser download is not used).
# As root with apt-get it installs them; otherwise it prints the command to run.
# The brokers are not needed if both already run elsewhere (Docker, a teacher's server);
# without Chromium the browser tests are skipped, saying so.
set -euo pipefail

need=()
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
if ! { java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; }; then
  need+=(openjdk-17-jre-headless)
fi
command -v mvn >/dev/null 2>&1 || need+=(maven)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: missing system packages: ${need[*]}" >&2
  echo "      on Debian/Ubuntu: sudo apt-get install -y ${need[*]}" >&2
  echo "      (or run the brokers with Docker: docker compose up -d; without" >&2
  echo "      chromium the live view's browser tests are skipped)" >&2
  exit 0
fi

echo "installing ${need[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Keep the package from starting a system-wide RabbitMQ: the launcher runs its own
# on private ports. Only remove the policy file if we created it.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
