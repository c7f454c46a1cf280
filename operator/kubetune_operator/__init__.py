"""The Kubernetes driver of kubetune (kopf operator); built in a later issue."""
