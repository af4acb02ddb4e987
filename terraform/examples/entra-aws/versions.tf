terraform {
  required_version = ">= 1.6"

  # State: keep it in a remote backend, encrypted and private: it holds the
  # Duo secret key, the Entra client secret and the clientState
  # (terraform/README.md, "State"). For example an S3 bucket you created
  # for state (use_lockfile needs Terraform >= 1.10; before, a DynamoDB
  # lock table: dynamodb_table = "…"):
  #
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "idp-duo-relay/entra-aws.tfstate"
  #   region       = "us-east-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.28, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5, < 4.0"
    }
  }
}
