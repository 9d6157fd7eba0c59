# Values the AWS provider validates as ARNs; everything else the mock provider invents.
mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/meridian-mock"
  }
}

mock_resource "aws_kms_key" {
  defaults = {
    arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  }
}

mock_resource "aws_globalaccelerator_accelerator" {
  defaults = {
    id = "arn:aws:globalaccelerator::123456789012:accelerator/00000000-0000-0000-0000-000000000000"
  }
}

mock_resource "aws_globalaccelerator_listener" {
  defaults = {
    id = "arn:aws:globalaccelerator::123456789012:accelerator/00000000-0000-0000-0000-000000000000/listener/0000"
  }
}
