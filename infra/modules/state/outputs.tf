output "table_arns" {
  description = "Table ARNs by logical name."
  value       = { for key, table in aws_dynamodb_table.this : key => table.arn }
}
