################################################################################
# The SES identity the uploader emails are sent from
################################################################################

resource "aws_sesv2_email_identity" "this" {
  email_identity = var.sender
}
