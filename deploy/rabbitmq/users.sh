#!/bin/sh
# The broker users of one live-gallery deployment, each allowed only its own service's names
# (run again, it updates passwords and permissions; compose's RabbitMQ health check runs it).
#
#   users.sh VHOST NAMESPACE USER_PREFIX CATALOG_PASSWORD WEB_PASSWORD
#
# makes USER_PREFIX-catalog and USER_PREFIX-web on VHOST for BUS_NAMESPACE=NAMESPACE. Neither may
# touch the default exchange (which reaches every queue) or the other service's exchange and
# queues beyond binding to its exchange; neither may configure anything but its own names.
set -eu
vhost=$1
ns=$(printf '%s' "$2" | sed 's/[.^$*+?()[{|\\]/\\&/g')
prefix=$3

user() {
  rabbitmqctl -q add_user "$1" "$2" >/dev/null 2>&1 || rabbitmqctl -q change_password "$1" "$2"
}
user "$prefix-catalog" "$4"
user "$prefix-web" "$5"

# The catalog: its exchange, its queues (like counts, resync) and their dead-letter exchanges and
# queues; it reads the web service's exchange to bind its queues to it.
catalog_own="^$ns\\.catalog(\\.(likes|resync)(\\.dead-letter)?)?\$"
catalog_read="^$ns\\.(web|catalog(\\.(likes|resync)(\\.dead-letter)?)?)\$"
rabbitmqctl -q set_permissions -p "$vhost" "$prefix-catalog" "$catalog_own" "$catalog_own" "$catalog_read"

# The web service: its exchange, the read model's queue, each instance's gallery queue and
# their dead letters; it reads the catalog's exchange to bind the read model to it.
web_own="^$ns\\.web(\\.read-model(\\.dead-letter)?|\\.gallery\\.([0-9a-f]{32}|dead-letter))?\$"
web_read="^$ns\\.(catalog|web(\\.read-model(\\.dead-letter)?|\\.gallery\\.([0-9a-f]{32}|dead-letter))?)\$"
rabbitmqctl -q set_permissions -p "$vhost" "$prefix-web" "$web_own" "$web_own" "$web_read"
