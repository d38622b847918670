# Shared by scripts/run and scripts/test: installs Debian packages with apt
# when their binaries are missing. Source it, then call `need_packages`.

have_redis() {
  command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]
}

have_postgres() {
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || command -v postgres >/dev/null 2>&1
}

# need_packages redis-server postgresql ...
need_packages() {
  local missing=()
  for package in "$@"; do
    case "$package" in
      redis-server) have_redis || missing+=(redis-server) ;;
      postgresql) have_postgres || missing+=(postgresql) ;;
      nginx) command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx) ;;
      curl) command -v curl >/dev/null 2>&1 || missing+=(curl) ;;
      # The console's browser tests: headless Chromium and its WebDriver.
      chromium) command -v chromium >/dev/null 2>&1 || missing+=(chromium) ;;
      chromium-driver) command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver) ;;
      python3) command -v python3 >/dev/null 2>&1 || missing+=(python3) ;;
      # `python3 -m venv` needs ensurepip, which Debian ships apart.
      python3-venv) python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv) ;;
      openssl) command -v openssl >/dev/null 2>&1 || missing+=(openssl) ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing ${missing[*]} with apt-get"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "error: ${missing[*]} missing and not root (install: apt-get install ${missing[*]})" >&2
      return 1
    }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# need_cargo_tool BINARY CRATE [cargo install flags...]: installs a cargo
# subcommand from crates.io when it is missing.
need_cargo_tool() {
  local binary=$1 crate=$2
  shift 2
  command -v "$binary" >/dev/null 2>&1 && return 0
  echo "==> installing $crate with cargo install"
  cargo install --locked --quiet "$crate" "$@"
}
