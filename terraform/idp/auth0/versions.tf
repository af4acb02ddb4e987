terraform {
  required_version = ">= 1.6"

  required_providers {
    auth0 = {
      source = "auth0/auth0"
      # auth0_event_stream was added in 1.29.0. The root module configures
      # the provider.
      version = ">= 1.29.0, < 2.0.0"
    }
  }
}
