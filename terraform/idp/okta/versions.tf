terraform {
  required_version = ">= 1.6"

  required_providers {
    okta = {
      source = "okta/okta"
      # 6.7.0 (27 March 2026) gave okta_event_hook_verification its
      # verification_status attribute (okta/terraform-provider-okta#2723,
      # which also re-verifies a hook Okta reset to UNVERIFIED); outputs.tf
      # reads it, so no earlier version may be selected. The resource itself
      # exists since 3.x. The root module configures the provider.
      version = ">= 6.7, < 7.0"
    }
  }
}
