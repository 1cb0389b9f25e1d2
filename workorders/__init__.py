"""Work orders: categories with custom fields, workflows as data, numbering, transitions and their audit trail."""
