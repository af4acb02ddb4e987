terraform {
  required_version = ">= 1.6"

  required_providers {
    okta = {
      source = "okta/okta"
      # okta_event_hook_verification exists since 3.x; 6.x is the current
      # major. The root module configures the provider.
      version = ">= 4.0, < 7.0"
    }
  }
}
