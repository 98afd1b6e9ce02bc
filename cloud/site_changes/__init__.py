"""A site change reaching the running cloud and the gateways: the service that validates,
saves and swaps in a new site version (registry, rules core, alarm book, announcer), and the
config push that sends each changed gateway its entry. Above `cloud.site` (the site model and
its storage and editing), which depends on none of these."""
