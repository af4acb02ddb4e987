terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.28 is the first release whose aws_lambda_function_url also grants
      # lambda:InvokeFunction (with lambda:InvokedViaFunctionUrl) for auth
      # type NONE, which every function URL created since October 2025 needs.
      version = ">= 6.28, < 7.0"
    }
  }
}
